// Package deploykeys makes the SSH keys Tether registers on repositories as
// deploy keys: ed25519 (Bitbucket accepts it), the public half as an
// authorized_keys line whose comment names Tether and the project, the
// private half as OpenSSH PEM for the store to seal.
package deploykeys

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Key is a freshly generated deploy key.
type Key struct {
	Public      string // "ssh-ed25519 AAAA… tether:<project>"
	Fingerprint string // "SHA256:…"
	Private     []byte // OpenSSH PEM; seal before storing, never show
}

// Generate makes a new ed25519 key for the named project.
func Generate(project string) (Key, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, fmt.Errorf("deploykeys: generate: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return Key{}, err
	}
	comment := "tether:" + strings.Map(func(r rune) rune {
		if r <= ' ' || r > '~' {
			return '-'
		}
		return r
	}, project)
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return Key{}, fmt.Errorf("deploykeys: marshal: %w", err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " " + comment
	return Key{Public: line, Fingerprint: ssh.FingerprintSHA256(sshPub), Private: pem.EncodeToMemory(block)}, nil
}

// Signer returns the signer for a stored private key.
func Signer(private []byte) (ssh.Signer, error) {
	s, err := ssh.ParsePrivateKey(private)
	if err != nil {
		return nil, fmt.Errorf("deploykeys: parse private key: %w", err)
	}
	return s, nil
}

// SameKey reports whether two authorized_keys lines carry the same key
// material, whatever their comments.
func SameKey(a, b string) bool {
	ka, _, _, _, errA := ssh.ParseAuthorizedKey([]byte(a))
	kb, _, _, _, errB := ssh.ParseAuthorizedKey([]byte(b))
	if errA != nil || errB != nil {
		return false
	}
	return ssh.FingerprintSHA256(ka) == ssh.FingerprintSHA256(kb)
}

// Fingerprint is the SHA256 fingerprint ("SHA256:…", as ssh-keygen -l
// and Bitbucket show it) of an authorized_keys line, "" when the line
// holds no key.
func Fingerprint(authorizedKey string) string {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(authorizedKey))
	if err != nil {
		return ""
	}
	return ssh.FingerprintSHA256(k)
}
