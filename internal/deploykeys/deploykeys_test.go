package deploykeys

import (
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestGenerate(t *testing.T) {
	k, err := Generate("acme api")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(k.Public, "ssh-ed25519 ") || !strings.HasSuffix(k.Public, " tether:acme-api") {
		t.Fatalf("public key line %q", k.Public)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k.Public))
	if err != nil {
		t.Fatal(err)
	}
	if ssh.FingerprintSHA256(pub) != k.Fingerprint || !strings.HasPrefix(k.Fingerprint, "SHA256:") {
		t.Fatalf("fingerprint %q does not match the key", k.Fingerprint)
	}
	signer, err := Signer(k.Private)
	if err != nil {
		t.Fatal(err)
	}
	if ssh.FingerprintSHA256(signer.PublicKey()) != k.Fingerprint {
		t.Fatal("private key does not belong to the public key")
	}
	other, _ := Generate("acme api")
	if other.Fingerprint == k.Fingerprint {
		t.Fatal("two keys are the same")
	}
	if !SameKey(k.Public, strings.TrimSuffix(k.Public, " tether:acme-api")+" another comment") {
		t.Fatal("SameKey compares comments")
	}
	if SameKey(k.Public, other.Public) || SameKey(k.Public, "garbage") {
		t.Fatal("SameKey matched different keys")
	}
}
