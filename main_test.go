package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"tether/internal/apptest"
	"tether/internal/bitbucket"
)

// TestMain lets the test binary run Tether itself, as a child process the
// crash test can kill.
func TestMain(m *testing.M) {
	if os.Getenv("TETHER_TEST_CHILD") == "1" {
		if err := run(context.Background(), nil, os.Getenv, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A delivery Tether answered with a 2xx is in the database even when the
// process is killed (SIGKILL) right after answering.
func TestAcknowledgedDeliverySurvivesKill(t *testing.T) {
	env := apptest.Start(t, apptest.Options{})
	env.AddUser("alice")
	env.Emulator.AddRepository("alice", "api", true)
	c := env.Client()
	c.SignUpWithBitbucket("alice")
	picker := c.Get("/projects/new")
	p := c.HTMX(http.MethodPost, "/projects", picker, url.Values{"repository": {"alice/api"}})
	if p.Status != http.StatusCreated {
		t.Fatalf("create project: %d %s", p.Status, p.Body)
	}
	hook := env.Emulator.Hooks("alice/api")[0]
	hookPath := hook.URL[strings.Index(hook.URL, "/hooks/"):]
	projects, err := env.App.Store.ProjectsOf(context.Background(), 1)
	if err != nil || len(projects) != 1 {
		t.Fatalf("projects: %v %v", projects, err)
	}
	repoUUID := projects[0].RepoUUID
	env.StopTether()

	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), append(env.Environ(), "TETHER_TEST_CHILD=1", "TETHER_ADDR=127.0.0.1:0")...)
	stdout, _ := child.StdoutPipe()
	var stderr bytes.Buffer
	child.Stderr = &stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	base := ""
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if rest, ok := strings.CutPrefix(lines.Text(), "Tether is listening on "); ok {
			base = strings.Fields(rest)[0]
			break
		}
	}
	if base == "" {
		t.Fatalf("child did not start: %s", stderr.String())
	}
	go func() {
		for lines.Scan() {
		}
	}()

	body, err := os.ReadFile(filepath.Join("internal", "bitbucket", "testdata", "recorded", "webhook_push.json"))
	if err != nil {
		t.Fatal(err)
	}
	body = bytes.ReplaceAll(body, []byte("{bc771cbf-829e-4c4b-b71f-a0eb3ac2b860}"), []byte(repoUUID))
	body = bytes.ReplaceAll(body, []byte("brydzewski/foo"), []byte("alice/api"))

	// Deliveries keep coming from several senders; the process is killed
	// while they are in flight.
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	client := &http.Client{Timeout: 5 * time.Second}
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Each delivery is another push (another head commit): the
				// same bytes again would be a replay.
				id := randomUUID()
				push := bytes.ReplaceAll(body, []byte("141977fedf5cf35aa290ac87d4b5177ac4cd9de1"), []byte(strings.ReplaceAll(randomUUID()+randomUUID(), "-", "")[:40]))
				signature := bitbucket.Sign([]byte(hook.Secret), push)
				req, _ := http.NewRequest(http.MethodPost, base+hookPath, bytes.NewReader(push))
				req.Header.Set("X-Event-Key", "repo:push")
				req.Header.Set("X-Hook-UUID", strings.Trim(hook.UUID, "{}"))
				req.Header.Set("X-Request-UUID", id)
				req.Header.Set("X-Attempt-Number", "1")
				req.Header.Set("X-Hub-Signature", signature)
				resp, err := client.Do(req)
				if err != nil {
					return // the process is gone
				}
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					mu.Lock()
					acked = append(acked, id)
					n := len(acked)
					mu.Unlock()
					if n == 150 {
						child.Process.Signal(syscall.SIGKILL)
					}
				}
			}
		})
	}
	waited := make(chan error, 1)
	go func() { waited <- child.Wait() }()
	select {
	case <-waited:
	case <-time.After(60 * time.Second):
		t.Fatal("the child was not killed")
	}
	close(stop)
	wg.Wait()

	db, err := sql.Open("sqlite", "file:"+filepath.Join(env.DataDir, "tether.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	missing := 0
	for _, id := range acked {
		var n int
		db.QueryRow(`SELECT count(*) FROM deliveries d JOIN workflows w ON w.delivery_id = d.id
			WHERE d.request_uuid = ? AND d.status = 'accepted'`, id).Scan(&n)
		if n != 1 {
			missing++
		}
	}
	if len(acked) < 150 || missing > 0 {
		t.Fatalf("%d deliveries acknowledged before the kill, %d of them missing from the database", len(acked), missing)
	}
}

func randomUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
