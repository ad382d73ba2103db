package emulator

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// The SSH endpoint answers like Bitbucket's ("conq") for deploy keys: only
// user git, only keys registered as deploy keys somewhere, and for
// git-upload-pack a ref advertisement of the repository the key belongs to.
// It serves no pack data: enough to tell whether a deploy key works, which
// is all Tether needs from it.

// sshServer is the running SSH endpoint, guarded by Emulator.mu.
type sshServer struct {
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// Bitbucket's answers on SSH, written to stderr before the exit status.
const (
	sshNoRepo       = "conq: repository does not exist.\n"
	sshNotThisRepo  = "conq: repository access denied. deployment key is not associated with the requested repository.\n"
	sshReadOnly     = "conq: repository access denied. access via a deployment key is read-only.\n"
	sshBadCommand   = "conq: invalid command syntax.\n"
	sshClientWait   = 10 * time.Second // how long to wait for the client to end the upload-pack exchange
	extKeyBlob      = "deploy-key-blob"
	gitCapabilities = "multi_ack thin-pack side-band side-band-64k ofs-delta shallow deepen-since deepen-not deepen-relative no-progress include-tag multi_ack_detailed no-done object-format=sha1 agent=git/conq"
)

// SSHRefusals are Bitbucket's own words for refusing Git over SSH, by
// name, for RefuseSSH and the control page. "not-found" and "not-this-repo"
// are conq's; "ip-allowlist" and "two-step" are what Bitbucket Cloud writes
// for a workspace's access controls (Atlassian KB "Error 403 when
// performing Git operations"; workspace access controls require an
// allowlisted IP or two-step verification for private content).
var SSHRefusals = map[string]string{
	"not-found":     strings.TrimSpace(sshNoRepo),
	"not-this-repo": strings.TrimSpace(sshNotThisRepo),
	"ip-allowlist":  "To access this repository, an admin must whitelist your IP.",
	"two-step":      "To access this repository, enable two-step authentication.",
}

// RefuseSSH makes the SSH endpoint refuse git commands on the repository
// fullName, writing reason (one of SSHRefusals' values, or any text) on
// stderr and exiting 128, as Bitbucket does when a workspace's access
// controls or the repository's state refuse a client; "" serves it again.
func (e *Emulator) RefuseSSH(fullName, reason string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.repoByFullName(fullName)
	if r == nil {
		return fmt.Errorf("no repository %s", fullName)
	}
	r.sshRefusal = strings.TrimSpace(reason)
	return nil
}

// StartSSH starts the SSH endpoint on addr (e.g. "127.0.0.1:0") and returns
// its host key, which clients should pin. Repository ssh clone links point
// at it from then on.
func (e *Emulator) StartSSH(addr string) (ssh.PublicKey, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ssh.ln != nil {
		return nil, errors.New("emulator: the SSH server is already running")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: e.checkDeployKey,
		ServerVersion:     "SSH-2.0-conker_emulator",
	}
	cfg.AddHostKey(e.cfg.HostKey)
	e.ssh.ln = ln
	e.ssh.conns = map[net.Conn]bool{}
	e.ssh.wg.Add(1)
	go e.acceptSSH(ln, cfg)
	return e.cfg.HostKey.PublicKey(), nil
}

// SSHAddr is the address the SSH endpoint listens on, "" when it is not
// running.
func (e *Emulator) SSHAddr() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ssh.ln == nil {
		return ""
	}
	return e.ssh.ln.Addr().String()
}

// CloseSSH stops the SSH endpoint and drops its connections.
func (e *Emulator) CloseSSH() {
	e.mu.Lock()
	if e.ssh.ln == nil {
		e.mu.Unlock()
		return
	}
	_ = e.ssh.ln.Close() // ends acceptSSH; its error is expected
	for c := range e.ssh.conns {
		_ = c.Close() // the connection is being dropped on purpose
	}
	e.ssh.ln = nil
	e.mu.Unlock()
	// Sessions take the lock, so wait for them without holding it.
	e.ssh.wg.Wait()
}

func (e *Emulator) acceptSSH(ln net.Listener, cfg *ssh.ServerConfig) {
	defer e.ssh.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		e.mu.Lock()
		if e.ssh.ln != ln {
			e.mu.Unlock()
			_ = c.Close() // closed while accepting
			return
		}
		e.ssh.conns[c] = true
		e.ssh.wg.Add(1)
		e.mu.Unlock()
		go func() {
			defer e.ssh.wg.Done()
			e.serveSSHConn(c, cfg)
			e.mu.Lock()
			delete(e.ssh.conns, c)
			e.mu.Unlock()
		}()
	}
}

// checkDeployKey admits user git with a key registered as a deploy key on
// some repository; anything else fails authentication, which OpenSSH
// reports as "Permission denied (publickey)".
func (e *Emulator) checkDeployKey(conn ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	if conn.User() != "git" {
		return nil, errors.New("only user git may connect")
	}
	blob := string(key.Marshal())
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.repos {
		for _, k := range r.keys {
			if k.blob == blob {
				return &ssh.Permissions{Extensions: map[string]string{extKeyBlob: blob}}, nil
			}
		}
	}
	return nil, errors.New("unknown public key")
}

func (e *Emulator) serveSSHConn(c net.Conn, cfg *ssh.ServerConfig) {
	defer c.Close()
	sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return // failed handshakes (unknown keys) are the client's to report
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "only session channels are supported")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			continue
		}
		wg.Go(func() { e.serveSSHSession(sc.Permissions.Extensions[extKeyBlob], ch, chReqs) })
	}
	wg.Wait()
}

func (e *Emulator) serveSSHSession(blob string, ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		switch req.Type {
		case "env", "pty-req":
			// GIT_PROTOCOL and terminals are accepted and ignored: the
			// emulator speaks protocol v0, which every git understands.
			_ = req.Reply(true, nil)
		case "shell":
			_ = req.Reply(true, nil)
			_, _ = io.WriteString(ch, e.sshGreeting(blob))
			exit(ch, 0)
			return
		case "exec":
			var cmd struct{ Command string }
			if err := ssh.Unmarshal(req.Payload, &cmd); err != nil {
				_ = req.Reply(false, nil)
				continue
			}
			_ = req.Reply(true, nil)
			exit(ch, e.sshExec(blob, cmd.Command, ch))
			return
		default:
			_ = req.Reply(false, nil)
		}
	}
}

func exit(ch ssh.Channel, status uint32) {
	_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status})) // the client may be gone already
}

// sshGreeting is what `ssh -T git@bitbucket.org` prints for a deploy key.
func (e *Emulator) sshGreeting(blob string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var b strings.Builder
	b.WriteString("authenticated via a deploy key.\n\nYou can use git to connect to Bitbucket. Shell access is disabled.\n\n" +
		"This deploy key has read access to the following repositories:\n\n")
	for _, r := range e.repos {
		for _, k := range r.keys {
			if k.blob == blob {
				fmt.Fprintf(&b, "%s: %s -- %s\n", r.fullName(), k.Label, k.Comment)
			}
		}
	}
	return b.String()
}

// parseGitCommand splits "git-upload-pack 'ws/slug.git'" into the command and
// the repository's full name, tolerating missing quotes, a leading slash and
// a missing .git suffix as git clients and people send them.
func parseGitCommand(cmd string) (verb, fullName string, ok bool) {
	verb, arg, found := strings.Cut(strings.TrimSpace(cmd), " ")
	if !found {
		return "", "", false
	}
	arg = strings.TrimSpace(arg)
	if len(arg) >= 2 && (arg[0] == '\'' || arg[0] == '"') && arg[len(arg)-1] == arg[0] {
		arg = arg[1 : len(arg)-1]
	}
	arg = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSuffix(arg, "/"), "/"), ".git")
	if strings.Count(arg, "/") != 1 {
		return "", "", false
	}
	return verb, arg, true
}

func (e *Emulator) sshExec(blob, cmd string, ch ssh.Channel) uint32 {
	verb, fullName, ok := parseGitCommand(cmd)
	if !ok || (verb != "git-upload-pack" && verb != "git-receive-pack" && verb != "git-upload-archive") {
		_, _ = io.WriteString(ch.Stderr(), sshBadCommand)
		return 128
	}
	e.mu.Lock()
	r := e.repoByFullName(fullName)
	if r == nil {
		e.mu.Unlock()
		_, _ = io.WriteString(ch.Stderr(), sshNoRepo)
		return 1
	}
	if r.sshRefusal != "" {
		msg := r.sshRefusal
		e.mu.Unlock()
		_, _ = io.WriteString(ch.Stderr(), msg+"\n")
		return 128
	}
	i := slices.IndexFunc(r.keys, func(k *deployKey) bool { return k.blob == blob })
	if i < 0 {
		e.mu.Unlock()
		_, _ = io.WriteString(ch.Stderr(), sshNotThisRepo)
		return 128
	}
	if verb == "git-receive-pack" {
		e.mu.Unlock()
		_, _ = io.WriteString(ch.Stderr(), sshReadOnly)
		return 128
	}
	r.keys[i].LastUsed = time.Now()
	adv := advertiseRefs(r)
	e.mu.Unlock()

	if _, err := ch.Write(adv); err != nil {
		return 128
	}
	waitForFlush(ch)
	return 0
}

// waitForFlush lets the client end the exchange (a flush packet, as
// `git ls-remote` sends, or closing its side) before the exit status, so it
// never sees the channel vanish mid-write. Wants are not served.
func waitForFlush(ch ssh.Channel) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4)
		_, _ = io.ReadFull(ch, buf) // any answer, or none, ends the wait
	}()
	select {
	case <-done:
	case <-time.After(sshClientWait):
	}
}

// advertiseRefs is upload-pack's protocol v0 ref advertisement in pkt-lines:
// HEAD with the capabilities first, then every ref, then a flush packet.
func advertiseRefs(r *repo) []byte {
	names := make([]string, 0, len(r.refs))
	for name := range r.refs {
		names = append(names, name)
	}
	slices.Sort(names)
	var lines []string
	caps := gitCapabilities
	if head, ok := r.refs[branchRef(r.mainbranch)]; ok {
		caps = "symref=HEAD:" + branchRef(r.mainbranch) + " " + caps
		lines = append(lines, head+" HEAD")
	}
	for _, name := range names {
		lines = append(lines, r.refs[name]+" "+name)
	}
	if len(lines) == 0 {
		lines = append(lines, strings.Repeat("0", 40)+" capabilities^{}")
	}
	var b strings.Builder
	for i, l := range lines {
		if i == 0 {
			l += "\x00" + caps
		}
		l += "\n"
		fmt.Fprintf(&b, "%04x%s", len(l)+4, l)
	}
	b.WriteString("0000")
	return []byte(b.String())
}

// KeyCanRead answers what the SSH endpoint would for git-upload-pack of
// fullName with key, without a connection: found is false when no such
// repository exists ("conq: repository does not exist."), allowed whether
// the key is one of its deploy keys. A simulation of thousands of probes
// asks this instead of opening as many SSH sessions.
func (e *Emulator) KeyCanRead(fullName string, key ssh.PublicKey) (found, allowed bool) {
	blob := string(key.Marshal())
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.repoByFullName(fullName)
	if r == nil {
		return false, false
	}
	return true, slices.ContainsFunc(r.keys, func(k *deployKey) bool { return k.blob == blob })
}
