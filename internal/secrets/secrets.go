// Package secrets seals what Tether must keep but never show — OAuth tokens,
// deploy private keys, webhook secrets — with AES-256-GCM under the
// instance's secret key. Each sealed value is bound to a purpose (its table
// and column) so a ciphertext copied into another column does not open.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KeyFile is the name of the generated key inside the data dir.
const KeyFile = "secret.key"

// Box seals and opens values with one key.
type Box struct {
	aead cipher.AEAD
}

// NewBox derives the AES-256 key from the configured secret. Any string of
// at least 32 characters is accepted; it is hashed so its length and alphabet
// do not matter.
func NewBox(secret string) (*Box, error) {
	if len(secret) < 32 {
		return nil, errors.New("secrets: the secret key must be at least 32 characters")
	}
	key := sha256.Sum256([]byte(secret))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead}, nil
}

// LoadOrCreateKey returns configured when it is set; otherwise the key kept
// in dataDir, generating it (0600) on first use.
func LoadOrCreateKey(dataDir, configured string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	path := filepath.Join(dataDir, KeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		// A key file from an older install or a careless copy may be
		// readable by others: only Tether should read it.
		if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(path, 0o600); err != nil {
				return "", fmt.Errorf("secrets: make %s private: %w", path, err)
			}
		}
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("secrets: read %s: %w", path, err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("secrets: data dir: %w", err)
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	key := base64.RawURLEncoding.EncodeToString(raw)
	// O_EXCL: two processes starting at once must not each write a key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return LoadOrCreateKey(dataDir, "")
	}
	if err != nil {
		return "", fmt.Errorf("secrets: create %s: %w", path, err)
	}
	defer f.Close()
	if _, err := f.WriteString(key + "\n"); err != nil {
		return "", fmt.Errorf("secrets: write %s: %w", path, err)
	}
	return key, f.Sync()
}

// Seal encrypts plaintext for the given purpose. An empty plaintext seals to
// nil, which the store keeps as NULL.
func (b *Box) Seal(purpose string, plaintext []byte) []byte {
	if len(plaintext) == 0 {
		return nil
	}
	nonce := make([]byte, b.aead.NonceSize(), b.aead.NonceSize()+len(plaintext)+b.aead.Overhead())
	rand.Read(nonce)
	return b.aead.Seal(nonce, nonce, plaintext, []byte(purpose))
}

// Open decrypts what Seal produced for the same purpose.
func (b *Box) Open(purpose string, sealed []byte) ([]byte, error) {
	if len(sealed) == 0 {
		return nil, nil
	}
	n := b.aead.NonceSize()
	if len(sealed) < n+b.aead.Overhead() {
		return nil, errors.New("secrets: sealed value too short")
	}
	plain, err := b.aead.Open(nil, sealed[:n], sealed[n:], []byte(purpose))
	if err != nil {
		return nil, errors.New("secrets: cannot open sealed value (wrong key or purpose)")
	}
	return plain, nil
}
