package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"tether/internal/apptest"
	"tether/internal/bitbucket"
	"tether/internal/bitbucket/emulator"
)

// TestMain lets the test binary run Tether itself, as a child process
// the tests signal, kill, flood and measure.
func TestMain(m *testing.M) {
	if os.Getenv("TETHER_TEST_CHILD") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := run(ctx, nil, os.Getenv, os.Stdout, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// onDisk is a data folder holding Alice's project on alice/api, made by
// an in-process Tether that was stopped again; the emulator keeps running
// for the child processes started on the folder.
type onDisk struct {
	env         *apptest.Env
	hook        emulator.Hook
	hookPath    string
	projectPath string
	push        []byte       // Bitbucket's recorded repo:push, for alice/api
	session     *http.Cookie // Alice's
}

func projectOnDisk(t *testing.T) *onDisk {
	t.Helper()
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
	d := &onDisk{env: env, hook: env.Emulator.Hooks("alice/api")[0], projectPath: p.Header.Get("HX-Redirect")}
	d.hookPath = d.hook.URL[strings.Index(d.hook.URL, "/hooks/"):]
	projects, err := env.App.Store.ProjectsOf(context.Background(), 1)
	if err != nil || len(projects) != 1 {
		t.Fatalf("projects: %v %v", projects, err)
	}
	u, _ := url.Parse(env.URL)
	for _, ck := range c.HTTP.Jar.Cookies(u) {
		if ck.Name == "tether_session" {
			d.session = ck
		}
	}
	body, err := os.ReadFile(filepath.Join("internal", "bitbucket", "testdata", "recorded", "webhook_push.json"))
	if err != nil {
		t.Fatal(err)
	}
	body = bytes.ReplaceAll(body, []byte("{bc771cbf-829e-4c4b-b71f-a0eb3ac2b860}"), []byte(projects[0].RepoUUID))
	d.push = bytes.ReplaceAll(body, []byte("brydzewski/foo"), []byte("alice/api"))
	env.StopTether()
	return d
}

// freshPush is the recorded push with a new random head commit: another
// push, where the same bytes again would be a replay.
func (d *onDisk) freshPush() []byte {
	return bytes.ReplaceAll(d.push, []byte("141977fedf5cf35aa290ac87d4b5177ac4cd9de1"),
		[]byte(strings.ReplaceAll(randomUUID()+randomUUID(), "-", "")[:40]))
}

// delivery is a signed delivery of body to the project's hook on base.
func (d *onDisk) delivery(base string, body io.Reader, signed []byte) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, base+d.hookPath, body)
	req.Header.Set("X-Event-Key", "repo:push")
	req.Header.Set("X-Hook-UUID", strings.Trim(d.hook.UUID, "{}"))
	req.Header.Set("X-Request-UUID", randomUUID())
	req.Header.Set("X-Attempt-Number", "1")
	req.Header.Set("X-Hub-Signature", bitbucket.Sign([]byte(d.hook.Secret), signed))
	return req
}

// deliverFresh sends n new pushes, 4 at a time, and fails unless each is
// accepted.
func (d *onDisk) deliverFresh(t *testing.T, base string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			body := d.freshPush()
			resp, err := http.DefaultClient.Do(d.delivery(base, bytes.NewReader(body), body))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				t.Errorf("delivery: %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
}

// child is Tether's own main running as another process on a data folder.
type child struct {
	t      *testing.T
	cmd    *exec.Cmd
	base   string // http://127.0.0.1:port
	stderr *apptest.Logs
	exited chan error
}

// startChild starts Tether with environ on a free loopback port and waits
// until it listens.
func startChild(t *testing.T, environ ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(environ, "TETHER_TEST_CHILD=1", "TETHER_ADDR=127.0.0.1:0")...)
	stdout, _ := cmd.StdoutPipe()
	c := &child{t: t, cmd: cmd, stderr: &apptest.Logs{}, exited: make(chan error, 1)}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if rest, ok := strings.CutPrefix(lines.Text(), "Tether is listening on "); ok {
			c.base = strings.Fields(rest)[0]
			break
		}
	}
	if c.base == "" {
		t.Fatalf("child did not start: %s", c.stderr)
	}
	go io.Copy(io.Discard, stdout)
	return c
}

// rssMB is the child's resident memory, from /proc.
func (c *child) rssMB() float64 {
	c.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		c.t.Fatal(err)
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		c.t.Fatalf("no VmRSS in %s", b)
	}
	kb, _ := strconv.Atoi(string(m[1]))
	return float64(kb) / 1024
}

// terminate sends SIGTERM and waits for the exit: its status and how long
// it took.
func (c *child) terminate() (int, time.Duration) {
	c.t.Helper()
	start := time.Now()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.exited:
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			c.t.Fatal(err)
		}
		return code, time.Since(start)
	case <-time.After(30 * time.Second):
		c.t.Fatal("still running 30 s after SIGTERM")
		return 0, 0
	}
}

// dirSize is the bytes of the files in dir.
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && !e.IsDir() {
			n += info.Size()
		}
	}
	return n
}

func queryInt(t *testing.T, dir, query string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "tether.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(query).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A delivery Tether answered with a 2xx is in the database even when the
// process is killed (SIGKILL) right after answering.
func TestAcknowledgedDeliverySurvivesKill(t *testing.T) {
	d := projectOnDisk(t)
	c := startChild(t, d.env.Environ()...)

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
				body := d.freshPush()
				req := d.delivery(c.base, bytes.NewReader(body), body)
				resp, err := client.Do(req)
				if err != nil {
					return // the process is gone
				}
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					mu.Lock()
					acked = append(acked, req.Header.Get("X-Request-UUID"))
					n := len(acked)
					mu.Unlock()
					if n == 150 {
						c.cmd.Process.Signal(syscall.SIGKILL)
					}
				}
			}
		})
	}
	select {
	case <-c.exited:
	case <-time.After(60 * time.Second):
		t.Fatal("the child was not killed")
	}
	close(stop)
	wg.Wait()

	db, err := sql.Open("sqlite", "file:"+filepath.Join(d.env.DataDir, "tether.db")+"?mode=ro")
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

// bigMultipart is a 40 MB multipart form, generated as it is sent.
func bigMultipart(size int) (io.Reader, string) {
	head := "--B\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\n"
	return io.MultiReader(strings.NewReader(head), io.LimitReader(zeros{}, int64(size)), strings.NewReader("\r\n--B--\r\n")),
		"multipart/form-data; boundary=B"
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}

// Anonymous 40 MB multipart POSTs to /login — with their length declared
// or sent chunked — are refused before anything reads them: the process
// does not grow (before: eight took it from about 20 MB to over 900 MB).
func TestAnonymousPostsHoldNoMemory(t *testing.T) {
	c := startChild(t, "TETHER_DATA_DIR="+t.TempDir())
	before := c.rssMB()
	var wg sync.WaitGroup
	statuses := make([]int, 12)
	for i := range statuses {
		wg.Go(func() {
			const size = 40 << 20
			body, ct := bigMultipart(size)
			req, _ := http.NewRequest(http.MethodPost, c.base+"/login", body)
			req.Header.Set("Content-Type", ct)
			if i < 8 {
				req.ContentLength = size + 100
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				statuses[i] = -1 // the server stopped reading and closed
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	after := c.rssMB()
	for i, s := range statuses {
		if s != http.StatusRequestEntityTooLarge && s != -1 {
			t.Errorf("POST %d: %d, want 413", i, s)
		}
	}
	if after > before+30 {
		t.Fatalf("RSS %.0f MB → %.0f MB after 12 × 40 MB multipart POSTs", before, after)
	}
	t.Logf("RSS %.0f MB → %.0f MB after 12 × 40 MB multipart POSTs to /login", before, after)
}

// fatHeaders are what an attacker adds to a forged delivery: 100 KB of
// X-* headers, several of them Bitbucket's own.
func fatHeaders(h http.Header) {
	pad := strings.Repeat("x", 9000)
	h.Set("X-Event-Key", "repo:push"+pad)
	h.Set("X-Hook-UUID", "{"+pad+"}")
	h.Set("X-Request-UUID", pad)
	for i := range 8 {
		h.Set(fmt.Sprintf("X-Pad-%d", i), pad)
	}
	h.Set("X-Hub-Signature", "sha256="+strings.Repeat("0", 64))
}

// Forged deliveries cost neither disk nor log: 600 to a made-up hook URL
// and 600 to the real one, each with 100 KB of X-* headers, leave the data
// folder and the log nearly as they were (before: 60 MB each), and the
// project's accepted delivery is still listed.
func TestForgedDeliveriesCostNoDiskOrLog(t *testing.T) {
	d := projectOnDisk(t)
	c := startChild(t, d.env.Environ()...)
	d.deliverFresh(t, c.base, 1)
	time.Sleep(500 * time.Millisecond)
	disk, logged := dirSize(t, d.env.DataDir), len(c.stderr.String())

	// 100 KB of headers exceed the 16 KB allowed: refused before routing.
	statuses := map[int]int{}
	var mu sync.Mutex
	forge := func(target string, n int, fat bool) {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for range n {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(`{"push":{"changes":[]}}`))
				req.Header.Set("X-Event-Key", "repo:push")
				req.Header.Set("X-Hook-UUID", strings.Trim(d.hook.UUID, "{}"))
				req.Header.Set("X-Request-UUID", randomUUID())
				req.Header.Set("X-Hub-Signature", "sha256="+strings.Repeat("0", 64))
				if fat {
					fatHeaders(req.Header)
				} else {
					req.Header.Set("X-Pad", strings.Repeat("x", 12<<10)) // under the limit
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				mu.Lock()
				statuses[resp.StatusCode]++
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	base := c.base
	forge(base+"/hooks/bitbucket/made-up-token", 300, true)
	forge(base+"/hooks/bitbucket/made-up-token", 300, false)
	forge(base+d.hookPath, 300, true)
	forge(base+d.hookPath, 300, false)
	time.Sleep(time.Second) // refusals are recorded a few times a second
	grewDisk, grewLog := dirSize(t, d.env.DataDir)-disk, len(c.stderr.String())-logged
	t.Logf("1,200 forged deliveries %v: data folder +%d bytes, log +%d bytes", statuses, grewDisk, grewLog)
	if statuses[http.StatusRequestHeaderFieldsTooLarge] != 600 || statuses[http.StatusNotFound] != 300 || statuses[http.StatusUnauthorized] != 300 {
		t.Fatalf("answers %v", statuses)
	}
	if grewDisk > 256<<10 || grewLog > 2<<10 || strings.Contains(c.stderr.String(), "xxxxxxxx") {
		t.Fatalf("1,200 forged deliveries grew the data folder by %d bytes and the log by %d", grewDisk, grewLog)
	}
	if n := queryInt(t, d.env.DataDir, `SELECT count(*) FROM deliveries WHERE status = 'accepted'`); n != 1 {
		t.Fatalf("%d accepted deliveries, want the one real one", n)
	}
	if n := queryInt(t, d.env.DataDir, `SELECT coalesce(sum(count), 0) FROM delivery_refusals`); n != 300 {
		t.Fatalf("%d refusals counted, want 300", n)
	}
	if n := queryInt(t, d.env.DataDir, `SELECT count(*) FROM delivery_refusals`); n != 1 {
		t.Fatalf("%d refusal rows for one project and one reason", n)
	}
}

// SIGTERM lets a request in flight finish, cuts a client that never ends
// its request once the grace period is over, and exits 0 (before: 15 s
// and exit status 1).
func TestSIGTERMFinishesInFlightWorkAndExitsZero(t *testing.T) {
	d := projectOnDisk(t)
	dataDir := d.env.DataDir
	// An older install left the database readable by others.
	os.Chmod(filepath.Join(dataDir, "tether.db"), 0o644)
	c := startChild(t, d.env.Environ()...)
	for _, name := range []string{"tether.db", "tether.db-wal", "tether.db-shm"} {
		if st, err := os.Stat(filepath.Join(dataDir, name)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want 0600", name, st.Mode().Perm(), err)
		}
	}

	// The slow client: headers, then a byte of its body now and then.
	addr := strings.TrimPrefix(c.base, "http://")
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "POST /login HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n", addr)
	stopTrickle := make(chan struct{})
	defer close(stopTrickle)
	go func() {
		for {
			select {
			case <-stopTrickle:
				return
			case <-time.After(300 * time.Millisecond):
				slow.Write([]byte("a"))
			}
		}
	}()

	// A delivery in flight: its body arrives over 1.5 s, SIGTERM comes in
	// the middle.
	body := d.freshPush()
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < len(body); i += len(body) / 5 {
			pw.Write(body[i:min(i+len(body)/5, len(body))])
			time.Sleep(300 * time.Millisecond)
		}
		pw.Close()
	}()
	answered := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(d.delivery(c.base, pr, body))
		if err != nil {
			answered <- -1
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	time.Sleep(500 * time.Millisecond)
	code, took := c.terminate()
	if status := <-answered; status != http.StatusAccepted {
		t.Errorf("the delivery in flight at SIGTERM: %d, want 202", status)
	}
	if code != 0 || took > ShutdownGrace+3*time.Second {
		t.Fatalf("exit status %d after %s, want 0 within the %s grace period\n%s", code, took, ShutdownGrace, c.stderr)
	}
	slow.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := slow.Read(make([]byte, 1)); err == nil {
		t.Error("the slow client's connection is still open")
	}
	t.Logf("SIGTERM with a slow client: exit %d after %s", code, took.Round(100*time.Millisecond))
}

// Retention keeps each project's most recent deliveries and workflows
// (TETHER_RETENTION_PER_PROJECT here 40): pushes beyond it leave the data
// folder no bigger; badge polls and static files are no log lines at INFO.
func TestRetentionBoundsTheDataFolder(t *testing.T) {
	d := projectOnDisk(t)
	environ := append(d.env.Environ(), "TETHER_RETENTION_PER_PROJECT=40")
	dir := d.env.DataDir
	cycle := func() int64 {
		c := startChild(t, environ...) // prunes as it starts
		deadline := time.Now().Add(10 * time.Second)
		for queryInt(t, dir, `SELECT count(*) FROM deliveries`) > 40 || queryInt(t, dir, `SELECT count(*) FROM workflows`) > 40 {
			if time.Now().After(deadline) {
				t.Fatal("retention did not prune within 10 s")
			}
			time.Sleep(50 * time.Millisecond)
		}
		d.deliverFresh(t, c.base, 150)
		if code, _ := c.terminate(); code != 0 {
			t.Fatalf("exit status %d", code)
		}
		return dirSize(t, dir)
	}
	start := dirSize(t, dir)
	first := cycle()
	second := cycle()
	third := cycle()
	if n := queryInt(t, dir, `SELECT count(*) FROM deliveries`); n != 190 {
		t.Fatalf("%d deliveries after pruning to 40 and 150 more", n)
	}
	// Once pruning has begun, another 150 pushes add only their body
	// digests (kept a day to recognise replays), not 150 deliveries and
	// workflows: a third of what the first 150 added at most.
	t.Logf("data folder: %d bytes, then after 150, 300 and 450 pushes (40 kept): %d, %d, %d", start, first, second, third)
	if third-second > (first-start)/3 {
		t.Fatalf("150 more pushes grew the data folder by %d bytes; the first 150 by %d", third-second, first-start)
	}

	c := startChild(t, environ...)
	project := c.base + d.projectPath
	for _, path := range []string{"/deploy-key", "/webhook", "/activity"} {
		for range 50 {
			req, _ := http.NewRequest(http.MethodGet, project+path, nil)
			req.Header.Set("HX-Request", "true")
			req.AddCookie(d.session)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("poll %s: %d", path, resp.StatusCode)
			}
		}
	}
	for range 50 {
		resp, err := http.Get(c.base + "/static/app.css")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if log := c.stderr.String(); strings.Contains(log, "route=/projects/:id/deploy-key") || strings.Contains(log, "route=/static/") {
		t.Fatalf("badge polls or static files logged at INFO:\n%s", log)
	}
}

func randomUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// A crash forgets at most a few seconds of the API budget's hour: while
// Tether runs, the meters reach the database every few seconds without a
// stop, and after a SIGKILL the restarted process shows the calls the
// killed one made (the emulator's count of Alice's hour).
func TestAPIBudgetMeterSurvivesKill(t *testing.T) {
	t.Parallel()
	d := projectOnDisk(t)
	c := startChild(t, d.env.Environ()...)
	jar, _ := cookiejar.New(nil)
	base, _ := url.Parse(c.base)
	jar.SetCookies(base, []*http.Cookie{{Name: d.session.Name, Value: d.session.Value, Path: "/"}})
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	get := func(path string) string {
		t.Helper()
		resp, err := client.Get(c.base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		return string(b)
	}
	token := regexp.MustCompile(`name="_csrf" value="([^"]+)"`).FindStringSubmatch(get(d.projectPath))
	if token == nil {
		t.Fatal("no CSRF token on the project page")
	}
	before := d.env.Emulator.APICallsOf("alice").LastHour
	resp, err := client.PostForm(c.base+d.projectPath+"/webhook/check", url.Values{"_csrf": {token[1]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	spent := d.env.Emulator.APICallsOf("alice").LastHour
	if spent == before {
		t.Fatalf("Check now made no API call (%d before and after)", spent)
	}

	// Saved while running: no stop, no signal.
	stored := func() int {
		db, err := sql.Open("sqlite", "file:"+filepath.Join(d.env.DataDir, "tether.db")+"?mode=ro&_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var raw string
		if err := db.QueryRow(`SELECT meter FROM budget_meters WHERE user_id = 1`).Scan(&raw); err != nil {
			return -1
		}
		var m bitbucket.Meter
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			t.Fatal(err)
		}
		return len(m.Calls)
	}
	deadline := time.Now().Add(15 * time.Second)
	for stored() != spent && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if n := stored(); n != spent {
		t.Fatalf("15 s after Check now the stored meter holds %d calls, Alice's hour %d", n, spent)
	}
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited

	again := startChild(t, d.env.Environ()...)
	base, _ = url.Parse(again.base)
	jar.SetCookies(base, []*http.Cookie{{Name: d.session.Name, Value: d.session.Value, Path: "/"}})
	c = again
	team := get("/team")
	m := regexp.MustCompile(`data-testid="meter-spent"[^>]*>\s*(\d+)`).FindStringSubmatch(team)
	if m == nil || m[1] != strconv.Itoa(spent) {
		t.Fatalf("after a SIGKILL and a restart the Team page meter says %v, Alice's hour holds %d calls", m, spent)
	}
}
