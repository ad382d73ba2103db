package secrets

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestSealOpen(t *testing.T) {
	box, err := NewBox("0123456789abcdef0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	sealed := box.Seal("identity.access_token", []byte("tok-123"))
	if bytes.Contains(sealed, []byte("tok-123")) {
		t.Fatal("sealed value contains the plaintext")
	}
	got, err := box.Open("identity.access_token", sealed)
	if err != nil || string(got) != "tok-123" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := box.Open("identity.refresh_token", sealed); err == nil {
		t.Fatal("opened with another purpose")
	}
	other, _ := NewBox("another-key-another-key-another-key")
	if _, err := other.Open("identity.access_token", sealed); err == nil {
		t.Fatal("opened with another key")
	}
	if box.Seal("x", nil) != nil {
		t.Fatal("empty plaintext must seal to nil")
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadOrCreateKey(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", info.Mode().Perm())
	}
	k2, _ := LoadOrCreateKey(dir, "")
	if k1 != k2 || len(k1) < 32 {
		t.Fatalf("key not stable: %q vs %q", k1, k2)
	}
	if k, _ := LoadOrCreateKey(dir, "configured-value"); k != "configured-value" {
		t.Fatalf("configured key ignored: %q", k)
	}
	if _, err := NewBox("short"); err == nil {
		t.Fatal("short key accepted")
	}
}

// A key file others may read (an older install, a careless copy) is made
// 0600 when Tether loads it.
func TestLoadOrCreateKeyMakesTheKeyPrivate(t *testing.T) {
	dir := t.TempDir()
	key, err := LoadOrCreateKey(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, KeyFile)
	os.Chmod(path, 0o644)
	again, err := LoadOrCreateKey(dir, "")
	if err != nil || again != key {
		t.Fatalf("reloaded key %q, %v", again, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("key file is %v, want 0600", st.Mode().Perm())
	}
}
