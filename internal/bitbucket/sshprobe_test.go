package bitbucket

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// gitServer is a minimal Bitbucket-like SSH endpoint: it accepts one
// client key, and answers `git-upload-pack '<repo>'` with a ref
// advertisement for the one repository it serves, or with Bitbucket's
// refusal on stderr for any other.
type gitServer struct {
	addr    string
	hostKey ssh.PublicKey
}

func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startGitServer(t *testing.T, hostSigner ssh.Signer, allowed ssh.PublicKey, repo string) gitServer {
	t.Helper()
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(key.Marshal(), allowed.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	cfg.AddHostKey(hostSigner)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go serveGit(conn, cfg, repo)
		}
	}()
	return gitServer{addr: ln.Addr().String(), hostKey: hostSigner.PublicKey()}
}

func serveGit(conn net.Conn, cfg *ssh.ServerConfig, repo string) {
	defer conn.Close()
	_, chans, reqs, err := ssh.NewServerConn(conn, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "no")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			return
		}
		go func() {
			defer ch.Close()
			for req := range chReqs {
				if req.Type != "exec" {
					req.Reply(false, nil)
					continue
				}
				var exec struct{ Command string }
				ssh.Unmarshal(req.Payload, &exec)
				req.Reply(true, nil)
				status := uint32(0)
				if exec.Command == "git-upload-pack '"+repo+"'" {
					io.WriteString(ch, pktLine("141977fedf5cf35aa290ac87d4b5177ac4cd9de1 HEAD\x00multi_ack side-band-64k symref=HEAD:refs/heads/master\n"))
					io.WriteString(ch, pktLine("141977fedf5cf35aa290ac87d4b5177ac4cd9de1 refs/heads/master\n"))
					io.WriteString(ch, "0000")
					// The client answers with a flush: it wants nothing.
					var flush [4]byte
					io.ReadFull(ch, flush[:])
				} else {
					fmt.Fprintf(ch.Stderr(), "repository access denied. deployment key is not associated with the requested repository.\n")
					status = 1
				}
				ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
				return
			}
		}()
	}
}

func pktLine(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }

func probeCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestProbeSSH(t *testing.T) {
	host := newSigner(t)
	client := newSigner(t)
	srv := startGitServer(t, host, client.PublicKey(), "acme/api.git")
	pinned := []ssh.PublicKey{srv.hostKey}

	t.Run("success", func(t *testing.T) {
		if err := ProbeSSH(probeCtx(t, 5*time.Second), srv.addr, pinned, client, "acme", "api"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("unknown client key", func(t *testing.T) {
		err := ProbeSSH(probeCtx(t, 5*time.Second), srv.addr, pinned, newSigner(t), "acme", "api")
		if !errors.Is(err, ErrSSHPermissionDenied) || IsTransient(err) {
			t.Errorf("err = %v, want ErrSSHPermissionDenied", err)
		}
	})

	t.Run("key not for this repository", func(t *testing.T) {
		err := ProbeSSH(probeCtx(t, 5*time.Second), srv.addr, pinned, client, "acme", "other")
		if !errors.Is(err, ErrSSHPermissionDenied) || !strings.Contains(err.Error(), "repository access denied") {
			t.Errorf("err = %v, want ErrSSHPermissionDenied with Bitbucket's message", err)
		}
	})

	t.Run("wrong host key", func(t *testing.T) {
		err := ProbeSSH(probeCtx(t, 5*time.Second), srv.addr, []ssh.PublicKey{newSigner(t).PublicKey()}, client, "acme", "api")
		if !errors.Is(err, ErrSSHHostKeyMismatch) || IsTransient(err) {
			t.Errorf("err = %v, want ErrSSHHostKeyMismatch", err)
		}
		if !strings.Contains(err.Error(), ssh.FingerprintSHA256(srv.hostKey)) {
			t.Errorf("err = %v does not name the offered key", err)
		}
	})

	t.Run("no pinned keys", func(t *testing.T) {
		if err := ProbeSSH(probeCtx(t, 5*time.Second), srv.addr, nil, client, "acme", "api"); err == nil {
			t.Error("probe without pinned host keys succeeded")
		}
	})
}

// An RSA host key is negotiated with a SHA-2 signature even when the pins
// also hold other key types the server does not have.
func TestProbeSSHRSAHostKey(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	host, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	client := newSigner(t)
	srv := startGitServer(t, host, client.PublicKey(), "acme/api.git")
	pinned, err := ParseHostKeys(DefaultHostKeys)
	if err != nil {
		t.Fatal(err)
	}
	pinned = append(pinned[:2:2], srv.hostKey) // Bitbucket's ed25519 and ecdsa, then ours
	if err := ProbeSSH(probeCtx(t, 5*time.Second), srv.addr, pinned, client, "acme", "api"); err != nil {
		t.Fatal(err)
	}
}

func TestProbeSSHUnreachable(t *testing.T) {
	client := newSigner(t)
	pinned := []ssh.PublicKey{newSigner(t).PublicKey()}

	t.Run("closed port", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		err = ProbeSSH(probeCtx(t, 5*time.Second), addr, pinned, client, "acme", "api")
		if err == nil || !IsTransient(err) {
			t.Errorf("err = %v, want transient", err)
		}
	})

	t.Run("server never answers", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				// Hold the connection open without a word.
				t.Cleanup(func() { conn.Close() })
			}
		}()
		start := time.Now()
		err = ProbeSSH(probeCtx(t, 200*time.Millisecond), ln.Addr().String(), pinned, client, "acme", "api")
		if !IsTransient(err) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want transient deadline", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("probe took %v despite a 200ms deadline", d)
		}
	})
}

func TestParseHostKeys(t *testing.T) {
	keys, err := ParseHostKeys(DefaultHostKeys)
	if err != nil {
		t.Fatal(err)
	}
	// Fingerprints as Atlassian publishes them for bitbucket.org.
	want := []string{
		"ssh-ed25519 SHA256:ybgmFkzwOSotHTHLJgHO0QN8L0xErw6vd0VhFA9m3SM",
		"ecdsa-sha2-nistp256 SHA256:FC73VB6C4OQLSCrjEayhMp9UMxS97caD/Yyi2bhW/J0",
		"ssh-rsa SHA256:46OSHA1Rmj8E8ERTC6xkNcmGOw9oFxYr0WF6zWW8l1E",
	}
	if len(keys) != len(want) {
		t.Fatalf("%d keys, want %d", len(keys), len(want))
	}
	for i, k := range keys {
		if got := k.Type() + " " + ssh.FingerprintSHA256(k); got != want[i] {
			t.Errorf("key %d = %s, want %s", i, got, want[i])
		}
	}

	ed := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIazEu89wgQZ4bqs3d63QSMzYVa0MuJ2e2gKTKqu+UUO"
	mixed := "# pinned for the demo\n\n" + ed + " comment\n[localhost]:2222 " + ed + "\nhost1,host2 " + ed + "\n"
	if keys, err := ParseHostKeys(mixed); err != nil || len(keys) != 3 {
		t.Errorf("mixed forms: %d keys, %v", len(keys), err)
	}
	for _, bad := range []string{"", "# only a comment", "@revoked * " + ed, "bitbucket.org ssh-ed25519 notbase64", "garbage"} {
		if _, err := ParseHostKeys(bad); err == nil {
			t.Errorf("ParseHostKeys(%q) accepted", bad)
		}
	}
}

func TestShellQuote(t *testing.T) {
	if got := shellQuote("acme/it's.git"); got != `'acme/it'\''s.git'` {
		t.Errorf("shellQuote = %s", got)
	}
}
