package emulator

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func startSSH(t *testing.T, v *env) ssh.PublicKey {
	t.Helper()
	hostKey, err := v.e.StartSSH("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.e.CloseSSH)
	return hostKey
}

func dialSSH(v *env, hostKey ssh.PublicKey, user string, key ssh.Signer) (*ssh.Client, error) {
	return ssh.Dial("tcp", v.e.SSHAddr(), &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(key)},
		HostKeyCallback: ssh.FixedHostKey(hostKey),
	})
}

// runGit runs cmd as git does (stdin ends with a flush packet) and returns
// stdout, stderr and the exit status.
func runGit(t *testing.T, c *ssh.Client, cmd string) (string, string, int) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var stdout, stderr bytes.Buffer
	s.Stdout, s.Stderr, s.Stdin = &stdout, &stderr, strings.NewReader("0000")
	err = s.Run(cmd)
	status := 0
	var exitErr *ssh.ExitError
	if errors.As(err, &exitErr) {
		status = exitErr.ExitStatus()
	} else if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return stdout.String(), stderr.String(), status
}

// pktLines decodes a pkt-line stream up to its flush packet.
func pktLines(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	for {
		if len(s) < 4 {
			t.Fatalf("truncated pkt-line stream %q", s)
		}
		n, err := strconv.ParseUint(s[:4], 16, 16)
		if err != nil {
			t.Fatalf("bad pkt-line length %q", s[:4])
		}
		if n == 0 {
			if s != "0000" {
				t.Errorf("data after the flush packet: %q", s[4:])
			}
			return out
		}
		out = append(out, s[4:n])
		s = s[n:]
	}
}

func TestSSHDeployKeys(t *testing.T) {
	v := newEnv(t)
	hostKey := startSSH(t, v)
	apiKey, apiLine := newKey(t, "tether@api")
	webKey, webLine := newKey(t, "tether@web")
	k, err := v.e.AddDeployKey("acme/api", apiLine, "Tether")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.e.AddDeployKey("acme/web", webLine, "Tether"); err != nil {
		t.Fatal(err)
	}

	c, err := dialSSH(v, hostKey, "git", apiKey)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, cmd := range []string{"git-upload-pack 'acme/api.git'", "git-upload-pack '/acme/api.git'", "git-upload-pack acme/api"} {
		out, errOut, status := runGit(t, c, cmd)
		if status != 0 || errOut != "" {
			t.Fatalf("%s: status %d stderr %q", cmd, status, errOut)
		}
		lines := pktLines(t, out)
		head := v.e.repoByFullName("acme/api").refs["refs/heads/main"]
		if len(lines) != 2 || !strings.HasPrefix(lines[0], head+" HEAD\x00") || !strings.Contains(lines[0], "symref=HEAD:refs/heads/main") ||
			lines[1] != head+" refs/heads/main\n" {
			t.Errorf("%s: advertisement %q", cmd, lines)
		}
	}
	// The key's last use shows in the API.
	var got keyJSONT
	v.getJSON(v.login("alice").AccessToken, "/repositories/acme/api/deploy-keys/"+strconv.Itoa(k.ID), http.StatusOK, &got)
	if got.LastUsed == nil {
		t.Error("last_used still null after a fetch")
	}

	// A key of another repository, an unknown repository, a push.
	if _, errOut, status := runGit(t, c, "git-upload-pack 'acme/web.git'"); status != 128 || errOut != sshNotThisRepo {
		t.Errorf("other repository: %d %q", status, errOut)
	}
	if _, errOut, status := runGit(t, c, "git-upload-pack 'acme/nope.git'"); status != 1 || errOut != sshNoRepo {
		t.Errorf("unknown repository: %d %q", status, errOut)
	}
	if _, errOut, status := runGit(t, c, "git-receive-pack 'acme/api.git'"); status != 128 || errOut != sshReadOnly {
		t.Errorf("push: %d %q", status, errOut)
	}

	// ssh -T lists what the key can read.
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	var greeting bytes.Buffer
	s.Stdout = &greeting
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	_ = s.Wait()
	if !strings.Contains(greeting.String(), "authenticated via a deploy key") || !strings.Contains(greeting.String(), "acme/api: Tether -- tether@api") {
		t.Errorf("greeting %q", greeting.String())
	}

	// The web repository's key reads the web repository.
	wc, err := dialSSH(v, hostKey, "git", webKey)
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	if _, _, status := runGit(t, wc, "git-upload-pack 'acme/web.git'"); status != 0 {
		t.Errorf("web key on web: %d", status)
	}

	// Unknown keys and other users fail authentication.
	stranger, _ := newKey(t, "x")
	if _, err := dialSSH(v, hostKey, "git", stranger); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("unknown key: %v", err)
	}
	if _, err := dialSSH(v, hostKey, "alice", apiKey); err == nil {
		t.Error("user alice was let in")
	}
	// A deleted key stops working at once.
	v.e.DeleteDeployKey("acme/api", k.ID)
	if _, err := dialSSH(v, hostKey, "git", apiKey); err == nil {
		t.Error("a deleted key was let in")
	}

	// Clone links point at the SSH server.
	var repo repoJSONT
	v.getJSON(v.login("alice").AccessToken, "/repositories/acme/api", http.StatusOK, &repo)
	for _, l := range repo.Links.Clone {
		if l.Name == "ssh" && l.Href != "ssh://git@"+v.e.SSHAddr()+"/acme/api.git" {
			t.Errorf("ssh clone link %s", l.Href)
		}
	}
}

func TestSSHReplacedKeyMaterial(t *testing.T) {
	v := newEnv(t)
	hostKey := startSSH(t, v)
	key, line := newKey(t, "ours")
	k, _ := v.e.AddDeployKey("acme/api", line, "Tether")
	_, theirs := newKey(t, "theirs")
	v.e.ReplaceDeployKeyMaterial("acme/api", k.ID, theirs)
	if _, err := dialSSH(v, hostKey, "git", key); err == nil {
		t.Error("the replaced key was let in")
	}
}

func TestSSHLifecycle(t *testing.T) {
	v := newEnv(t)
	if v.e.SSHAddr() != "" {
		t.Error("SSHAddr before StartSSH")
	}
	hostKey := startSSH(t, v)
	if !bytes.Equal(hostKey.Marshal(), v.e.cfg.HostKey.PublicKey().Marshal()) || hostKey.Type() != ssh.KeyAlgoED25519 {
		t.Errorf("host key %s", hostKey.Type())
	}
	if _, err := v.e.StartSSH("127.0.0.1:0"); err == nil {
		t.Error("a second StartSSH succeeded")
	}
	addr := v.e.SSHAddr()
	v.e.CloseSSH()
	if v.e.SSHAddr() != "" {
		t.Error("SSHAddr after CloseSSH")
	}
	key, line := newKey(t, "k")
	_, _ = v.e.AddDeployKey("acme/api", line, "")
	if _, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: "git", Auth: []ssh.AuthMethod{ssh.PublicKeys(key)}, HostKeyCallback: ssh.FixedHostKey(hostKey)}); err == nil {
		t.Error("connected after CloseSSH")
	}
}
