package app_test

// Benchmarks through real HTTP against a whole Tether (apptest.Start):
// the deploy-key badge poll and durable webhook ingest. They run only with
// -bench; docs/BENCHMARKS.md has the command and the figures.

import (
	"bytes"
	"database/sql"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"tether/internal/apptest"
	"tether/internal/bitbucket"
	"tether/internal/bitbucket/emulator"
)

// benchProject is a running Tether where alice is signed in and has one
// project, alice/api, with its deploy key and webhook. It is the
// testing.TB twin of withRepo + create + withHook.
type benchProject struct {
	env      *apptest.Env
	c        *apptest.Client
	project  *apptest.Page
	hook     emulator.Hook
	repoUUID string
}

func startBenchProject(tb testing.TB) *benchProject {
	tb.Helper()
	// Polls must never start background checks during a run.
	env := apptest.Start(tb, apptest.Options{NoSchedule: true})
	env.App.Connections.Stale = time.Hour
	env.AddUser("alice")
	c := env.Client()
	if p := c.SignUpWithBitbucket("alice"); p.Attr(`[data-testid="bitbucket-status"]`, "data-status") != "connected" {
		tb.Fatalf("alice not connected after sign-up:\n%s", p.Body)
	}
	env.Emulator.AddRepository("alice", "api", true)
	picker := c.Get("/projects/new")
	created := c.HTMX(http.MethodPost, "/projects", picker, url.Values{"repository": {"alice/api"}})
	if created.Status != http.StatusCreated {
		tb.Fatalf("create alice/api: %d\n%s", created.Status, created.Body)
	}
	project := c.Get(created.Header.Get("HX-Redirect"))
	hooks := env.Emulator.Hooks("alice/api")
	if len(hooks) != 1 {
		tb.Fatalf("%d hooks on Bitbucket, want 1", len(hooks))
	}
	bp := &benchProject{env: env, c: c, project: project, hook: hooks[0]}
	if err := bp.db(tb).QueryRow(`SELECT repo_uuid FROM projects`).Scan(&bp.repoUUID); err != nil {
		tb.Fatal(err)
	}
	return bp
}

// db opens Tether's database read-only.
func (bp *benchProject) db(tb testing.TB) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(bp.env.DataDir, "tether.db")+"?mode=ro")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// recordedPush is Bitbucket's recorded repo:push payload with its
// repository rewritten to the project's, every other byte as recorded.
func (bp *benchProject) recordedPush(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "bitbucket", "testdata", "recorded", "webhook_push.json"))
	if err != nil {
		tb.Fatal(err)
	}
	b = bytes.ReplaceAll(b, []byte("{bc771cbf-829e-4c4b-b71f-a0eb3ac2b860}"), []byte(bp.repoUUID))
	return bytes.ReplaceAll(b, []byte("brydzewski/foo"), []byte("alice/api"))
}

// benchClient keeps a connection per concurrent sender alive (the default
// transport keeps only two per host and would measure connection set-up).
func benchClient(tb testing.TB, conns int, jar http.CookieJar) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = conns, conns
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Jar: jar, Timeout: 30 * time.Second}
}

// latencies collects per-request durations from every RunParallel
// goroutine.
type latencies struct {
	mu  sync.Mutex
	all []time.Duration
}

func (l *latencies) add(d []time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, d...)
}

// percentile is the nearest-rank percentile p (0 < p <= 100) of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

// report adds the rate (b.N per second of measured time) and the p50 and
// p99 latency in milliseconds. Call it after b.StopTimer.
func (l *latencies) report(b *testing.B, rateUnit string) {
	slices.Sort(l.all)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), rateUnit)
	b.ReportMetric(float64(percentile(l.all, 50))/1e6, "p50-ms")
	b.ReportMetric(float64(percentile(l.all, 99))/1e6, "p99-ms")
}

// firstFailure keeps the first failure a RunParallel goroutine saw (they
// may not call b.Fatal).
type firstFailure struct {
	n   atomic.Int64
	msg atomic.Pointer[string]
}

func (f *firstFailure) add(format string, args ...any) {
	f.n.Add(1)
	msg := fmt.Sprintf(format, args...)
	f.msg.CompareAndSwap(nil, &msg)
}

func (f *firstFailure) String() string {
	if m := f.msg.Load(); m != nil {
		return fmt.Sprintf("%d failed, the first: %s", f.n.Load(), *m)
	}
	return ""
}

// cpuTime is the CPU time this process (Tether and its load, which share
// it) has used: per op, a figure other load on the machine barely moves.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pollersPerCPU × GOMAXPROCS browsers poll the badge at once.
const pollersPerCPU = 4

// BenchmarkBadgePoll measures the htmx poll of the deploy-key badge
// (GET /projects/:id/deploy-key with HX-Request): session, project and
// stored health read, fragment rendered; it never waits on Bitbucket.
func BenchmarkBadgePoll(b *testing.B) {
	bp := startBenchProject(b)
	path := bp.project.URL.Path + "/deploy-key"
	// The fragment, checked once the way the tests read it.
	first := bp.c.HTMX(http.MethodGet, path, bp.project, nil)
	apptest.MustStatus(b, first, http.StatusOK)
	if s, _ := first.Doc.Find(`#deploy-key [data-testid="health-badge"]`).First().Attr("data-status"); s != "valid" || strings.Contains(first.Body, "<html") {
		b.Fatalf("poll answers badge %q or a whole page:\n%s", s, first.Body)
	}
	valid := []byte(`data-status="valid"`)
	pollers := pollersPerCPU * runtime.GOMAXPROCS(0)
	client := benchClient(b, pollers, bp.c.HTTP.Jar)
	target := bp.env.URL + path

	var (
		lat    latencies
		failed firstFailure
	)
	b.SetParallelism(pollersPerCPU)
	b.ResetTimer()
	cpu := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		took := make([]time.Duration, 0, 4096)
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, target, nil)
			req.Header.Set("HX-Request", "true")
			start := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				failed.add("%v", err)
				continue
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			took = append(took, time.Since(start))
			if err != nil || resp.StatusCode != http.StatusOK || !bytes.Contains(body, valid) {
				failed.add("status %d, err %v:\n%s", resp.StatusCode, err, body)
			}
		}
		lat.add(took)
	})
	b.StopTimer()
	if failed.n.Load() > 0 {
		b.Fatalf("polls: %s", &failed)
	}
	lat.report(b, "req/s")
	b.ReportMetric(float64(cpuTime()-cpu)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
	b.ReportMetric(float64(pollers), "pollers")
}

// BenchmarkWebhookIngest sends signed repo:push deliveries (the recorded
// payload, a new X-Request-UUID each) to the project's hook URL from many
// senders at once, each waiting for Tether's answer as Bitbucket does; a
// 2xx means stored durably with its workflow. inflight=1 commits every
// delivery alone; more in flight share commits (group commit).
func BenchmarkWebhookIngest(b *testing.B) {
	procs := runtime.GOMAXPROCS(0)
	for _, perCPU := range []int{1, 16} {
		inflight := perCPU * procs
		if perCPU == 1 {
			inflight = 1 // RunParallel would start GOMAXPROCS senders
		}
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) {
			benchIngest(b, perCPU, inflight)
		})
	}
}

func benchIngest(b *testing.B, perCPU, inflight int) {
	bp := startBenchProject(b)
	recorded := bp.recordedPush(b)
	client := benchClient(b, inflight, nil)
	send := func(requestUUID string) (int, error) {
		// Each delivery is another push: the same bytes twice are a replay.
		body := freshPush(recorded)
		signature := bitbucket.Sign([]byte(bp.hook.Secret), body)
		req, _ := http.NewRequest(http.MethodPost, bp.hook.URL, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "Bitbucket-Webhooks/2.0")
		req.Header.Set("X-Event-Key", "repo:push")
		req.Header.Set("X-Hook-UUID", strings.Trim(bp.hook.UUID, "{}"))
		req.Header.Set("X-Request-UUID", requestUUID)
		req.Header.Set("X-Attempt-Number", "1")
		req.Header.Set("X-Hub-Signature", signature)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if status, err := send(newUUID()); err != nil || status != http.StatusAccepted {
		b.Fatalf("first delivery: %d %v", status, err)
	}

	var (
		lat     latencies
		failed  firstFailure
		ackedMu sync.Mutex
		acked   []string
	)
	sender := func(next func() bool) {
		took := make([]time.Duration, 0, 4096)
		var mine []string
		for next() {
			id := newUUID()
			start := time.Now()
			status, err := send(id)
			took = append(took, time.Since(start))
			switch {
			case err != nil:
				failed.add("%v", err)
			case status/100 == 2:
				mine = append(mine, id)
			default:
				failed.add("status %d", status)
			}
		}
		lat.add(took)
		ackedMu.Lock()
		acked = append(acked, mine...)
		ackedMu.Unlock()
	}
	b.ResetTimer()
	cpu := cpuTime()
	if inflight == 1 {
		i := 0
		sender(func() bool { i++; return i <= b.N })
	} else {
		b.SetParallelism(perCPU)
		b.RunParallel(func(pb *testing.PB) { sender(pb.Next) })
	}
	b.StopTimer()

	// Correctness, not timing: every acknowledged delivery is stored.
	db := bp.db(b)
	stored := map[string]bool{}
	rows, err := db.Query(`SELECT request_uuid FROM deliveries WHERE status = 'accepted'`)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			b.Fatal(err)
		}
		stored[id] = true
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	rows.Close()
	var missing []string
	for _, id := range acked {
		if !stored[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		b.Fatalf("%d of %d acknowledged deliveries not in the deliveries table, e.g. %s", len(missing), len(acked), missing[0])
	}
	// Every accepted delivery of a batch shares its received_at: distinct
	// values count the commits.
	var deliveries, commits, workflows int
	if err := db.QueryRow(`SELECT count(*), count(DISTINCT received_at) FROM deliveries WHERE status = 'accepted'`).Scan(&deliveries, &commits); err != nil {
		b.Fatal(err)
	}
	if err := db.QueryRow(`SELECT count(*) FROM workflows`).Scan(&workflows); err != nil {
		b.Fatal(err)
	}
	if workflows != deliveries {
		b.Fatalf("%d workflows for %d accepted deliveries", workflows, deliveries)
	}
	if n := failed.n.Load(); n > 0 {
		// Not stored and said so (a 5xx makes Bitbucket retry); shown, not fatal.
		b.Logf("not acknowledged: %s", &failed)
	}
	lat.report(b, "deliveries/s")
	b.ReportMetric(float64(cpuTime()-cpu)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
	b.ReportMetric(float64(failed.n.Load()), "not-2xx")
	b.ReportMetric(float64(deliveries)/float64(max(commits, 1)), "deliveries/commit")
}
