package bitbucket

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// DefaultHostKeys are Bitbucket Cloud's published SSH host keys (the set in
// use since the June 2023 rotation), in authorized_keys format. Their
// SHA256 fingerprints, as Atlassian publishes them:
//
//	ssh-ed25519          SHA256:ybgmFkzwOSotHTHLJgHO0QN8L0xErw6vd0VhFA9m3SM
//	ecdsa-sha2-nistp256  SHA256:FC73VB6C4OQLSCrjEayhMp9UMxS97caD/Yyi2bhW/J0
//	ssh-rsa              SHA256:46OSHA1Rmj8E8ERTC6xkNcmGOw9oFxYr0WF6zWW8l1E
const DefaultHostKeys = `bitbucket.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIazEu89wgQZ4bqs3d63QSMzYVa0MuJ2e2gKTKqu+UUO
bitbucket.org ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBPIQmuzMBuKdWeF4+a2sjSSpBK0iqitSQ+5BM9KhpexuGt20JpTVM7u5BDZngncgrqDMbWdxMWWOGtZ9UgbqgZE=
bitbucket.org ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQDQeJzhupRu0u0cdegZIa8e86EG2qOCsIsD1Xw0xSeiPDlCr7kq97NLmMbpKTX6Esc30NuoqEEHCuc7yWtwp8dI76EEEB1VqY9QJq6vk+aySyboD5QF61I/1WeTwu+deCbgKMGbUijeXhtfbxSxm6JwGrXrhBdofTsbKRUsrN1WoNgUa8uqN1Vx6WAJw1JHPhglEGGHea6QICwJOAr/6mrui/oB7pkaWKHj3z7d1IC4KWLtY47elvjbaTlkN04Kc/5LFEirorGYVbt15kAUlqGM65pk6ZBxtaO3+30LVlORZkxOh+LKL/BvbZ/iRNhItLqNyieoQj/uh/7Iv4uyH/cV/0b4WDSd3DptigWq84lJubb9t/DnZlrJazxyDCulTmKdOR7vs9gMTo+uoIrPSb8ScTtvw65+odKAlBj59dhnVp9zd7QUojOpXlL62Aw56U4oO+FALuevvMjiWeavKhJqlR7i5n9srYcrNV7ttmDw7kf/97P5zauIhxcjX+xHv4M=
`

var (
	// ErrSSHPermissionDenied means Bitbucket refused the deploy key: it
	// rejected the key at authentication, or git-upload-pack answered
	// "Permission denied" / "access denied". It comes as an *SSHRefusal,
	// whose Reason has Bitbucket's words.
	ErrSSHPermissionDenied = errors.New("permission denied (publickey)")
	// ErrSSHHostKeyMismatch means the server's host key is none of the
	// pinned ones: not the Bitbucket we expect, so nothing was sent.
	ErrSSHHostKeyMismatch = errors.New("host key does not match the pinned host keys")
)

// SSHRefusal is Bitbucket's definite answer over SSH that the key may not
// read the repository, with the reason it wrote on stderr, e.g. "conq:
// repository does not exist.", "conq: repository access denied.
// deployment key is not associated with the requested repository.", "To
// access this repository, an admin must whitelist your IP." or "To access
// this repository, enable two-step authentication." (Atlassian KB "Error
// 403 when performing Git operations"; the first two are conq's own). It
// is a verdict, never "could not check". errors.Is(err,
// ErrSSHPermissionDenied) is true when the key itself was refused (at
// authentication, or "permission denied" / "access denied").
type SSHRefusal struct {
	Reason string // Bitbucket's first line, at most 200 bytes
	denied bool
	op     string
}

func (e *SSHRefusal) Error() string { return "bitbucket: " + e.op + ": refused: " + e.Reason }

// NewSSHRefusal is Bitbucket's refusal of op with reason, its words on
// stderr (at most 200 bytes). The key itself was refused
// (ErrSSHPermissionDenied) when the reason says "permission denied" or
// "access denied", as Bitbucket's conq and OpenSSH write them.
func NewSSHRefusal(op, reason string) *SSHRefusal {
	lower := strings.ToLower(reason)
	return &SSHRefusal{Reason: reason, op: op,
		denied: strings.Contains(lower, "permission denied") || strings.Contains(lower, "access denied")}
}

// Is makes errors.Is(err, ErrSSHPermissionDenied) true for a refused key.
func (e *SSHRefusal) Is(target error) bool { return e.denied && target == ErrSSHPermissionDenied }

// probeTimeout bounds a probe whose ctx has no deadline: a server that
// accepts TCP and never speaks would otherwise hold it forever.
const probeTimeout = 30 * time.Second

// ProbeSSH checks that signer can read workspace/slug over SSH: it connects
// to addr (e.g. "bitbucket.org:22") as user "git", verifying the host key
// against hostKeys, runs git-upload-pack for the repository and waits for
// the first line of its ref advertisement.
//
// It returns nil on success, an error wrapping ErrSSHPermissionDenied or
// ErrSSHHostKeyMismatch for those verdicts, and an error for which
// IsTransient is true when the server could not be reached in time.
func ProbeSSH(ctx context.Context, addr string, hostKeys []ssh.PublicKey, signer ssh.Signer, workspace, slug string) error {
	op := fmt.Sprintf("ssh probe %s/%s at %s", workspace, slug, addr)
	if len(hostKeys) == 0 {
		return fmt.Errorf("bitbucket: %s: no host keys pinned", op)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, probeTimeout)
		defer cancel()
	}

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return &transientError{op: op, err: err}
	}
	defer conn.Close()
	// The ssh package blocks in reads that know nothing of ctx; closing the
	// connection is what interrupts them.
	defer context.AfterFunc(ctx, func() { conn.Close() })()

	cfg := &ssh.ClientConfig{
		User: "git",
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			for _, k := range hostKeys {
				if bytes.Equal(k.Marshal(), key.Marshal()) {
					return nil
				}
			}
			return fmt.Errorf("%w (server offered %s %s)", ErrSSHHostKeyMismatch, key.Type(), ssh.FingerprintSHA256(key))
		},
		HostKeyAlgorithms: hostKeyAlgorithms(hostKeys),
	}
	sconn, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		switch {
		case errors.Is(err, ErrSSHHostKeyMismatch):
			return fmt.Errorf("bitbucket: %s: %w", op, err)
		case ctx.Err() != nil:
			return &transientError{op: op, err: ctx.Err()}
		case strings.Contains(err.Error(), "unable to authenticate"):
			return NewSSHRefusal(op, "Permission denied (publickey).")
		case isNetworkError(err):
			return &transientError{op: op, err: err}
		}
		return fmt.Errorf("bitbucket: %s: %w", op, err)
	}
	client := ssh.NewClient(sconn, chans, reqs)
	defer client.Close()

	sess, err := client.NewSession()
	if err != nil {
		return probeIOError(ctx, op, err)
	}
	defer sess.Close()
	stdin, err := sess.StdinPipe()
	if err != nil {
		return fmt.Errorf("bitbucket: %s: %w", op, err)
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		return fmt.Errorf("bitbucket: %s: %w", op, err)
	}
	stderr := &limitedBuffer{max: 4096}
	sess.Stderr = stderr
	if err := sess.Start("git-upload-pack " + shellQuote(workspace+"/"+slug+".git")); err != nil {
		return probeIOError(ctx, op, err)
	}

	advErr := readAdvertisement(stdout)
	if advErr == nil {
		// A flush tells upload-pack we want nothing, so it exits cleanly
		// instead of logging a broken pipe.
		_, _ = io.WriteString(stdin, "0000")
		return nil
	}
	// No advertisement: the exit status and stderr (or an ERR packet) say
	// why.
	waitErr := sess.Wait()
	if ctx.Err() != nil {
		return &transientError{op: op, err: ctx.Err()}
	}
	msg := firstLine(stderr.String())
	var pktErr serverError
	sentErr := errors.As(advErr, &pktErr)
	if msg == "" && sentErr {
		msg = string(pktErr)
	}
	var exit *ssh.ExitError
	exited := errors.As(waitErr, &exit) && exit.ExitStatus() != 0
	switch {
	case msg != "" && (exited || sentErr):
		// Bitbucket said why, and ended the command: a verdict.
		return NewSSHRefusal(op, msg)
	case exited:
		return fmt.Errorf("bitbucket: %s: git-upload-pack exited %d without a reason", op, exit.ExitStatus())
	case msg != "":
		return fmt.Errorf("bitbucket: %s: no ref advertisement: %s", op, msg)
	case isNetworkError(advErr) || errors.Is(advErr, io.ErrUnexpectedEOF):
		// The server hung up without a word.
		return &transientError{op: op, err: advErr}
	}
	return fmt.Errorf("bitbucket: %s: %w", op, advErr)
}

// serverError is the text of an "ERR …" pkt-line.
type serverError string

func (e serverError) Error() string { return "server error: " + string(e) }

// readAdvertisement reads pkt-lines until the first ref line (or a flush,
// which an empty advertisement may consist of). A first ref line proves
// the server let us read the repository; the rest is not needed.
func readAdvertisement(r io.Reader) error {
	br := bufio.NewReader(r)
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return err
		}
		n, err := strconv.ParseUint(string(hdr[:]), 16, 16)
		if err != nil {
			return fmt.Errorf("malformed pkt-line header %q", hdr[:])
		}
		switch {
		case n == 0: // flush
			return nil
		case n < 4: // delim / response-end packets of protocol v2
			continue
		}
		line := make([]byte, n-4)
		if _, err := io.ReadFull(br, line); err != nil {
			return err
		}
		if msg, ok := bytes.CutPrefix(line, []byte("ERR ")); ok {
			return serverError(bytes.TrimSpace(msg))
		}
		return nil
	}
}

// probeIOError classifies a failure after the handshake.
func probeIOError(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return &transientError{op: op, err: ctx.Err()}
	}
	if isNetworkError(err) {
		return &transientError{op: op, err: err}
	}
	return fmt.Errorf("bitbucket: %s: %w", op, err)
}

// isNetworkError reports a broken or timed-out connection.
func isNetworkError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)
}

// hostKeyAlgorithms restricts negotiation to the pinned keys' algorithms,
// so a server with several host keys presents one we can check. RSA keys
// are only accepted with SHA-2 signatures.
func hostKeyAlgorithms(keys []ssh.PublicKey) []string {
	var algos []string
	for _, k := range keys {
		names := []string{k.Type()}
		if k.Type() == ssh.KeyAlgoRSA {
			names = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
		}
		for _, n := range names {
			if !slices.Contains(algos, n) {
				algos = append(algos, n)
			}
		}
	}
	return algos
}

// ParseHostKeys reads host keys in authorized_keys form, one per line; a
// known_hosts-style host prefix ("bitbucket.org ", "[host]:2222 ") is
// allowed and ignored. Blank lines and # comments are skipped.
func ParseHostKeys(authorizedKeys string) ([]ssh.PublicKey, error) {
	var keys []ssh.PublicKey
	for i, line := range strings.Split(authorizedKeys, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if line[0] == '@' {
			// @cert-authority / @revoked change what a line means; trusting
			// such a key as a plain host key would be wrong.
			marker, _, _ := strings.Cut(line, " ")
			return nil, fmt.Errorf("bitbucket: host keys line %d: %s lines are not supported", i+1, marker)
		}
		// ParseAuthorizedKey takes a leading host pattern for an options
		// field, which is exactly the skipping wanted here.
		key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("bitbucket: host keys line %d: %w", i+1, err)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("bitbucket: no host keys given")
	}
	return keys, nil
}

// shellQuote single-quotes s for the remote shell, as git itself does.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	return clip(s, 200)
}

// limitedBuffer keeps the first max bytes written to it: stderr is only
// needed for its first line, and a misbehaving server may send much more.
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string { return b.buf.String() }
