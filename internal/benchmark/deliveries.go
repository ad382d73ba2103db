package main

import (
	"bufio"
	"bytes"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"tether/internal/bitbucket"
	"tether/internal/secrets"
)

// recordedHead is the new head's commit hash in Bitbucket's recorded
// repo:push payload; each delivery replaces it with a fresh one, so no two
// bodies are the same (Tether refuses the same body twice as a replay).
const recordedHead = "141977fedf5cf35aa290ac87d4b5177ac4cd9de1"

// hookSecretPurpose is what Tether's store seals webhook secrets under
// (db.purposeHookSecret).
const hookSecretPurpose = "webhooks.secret"

// deliveries sends signed repo:push deliveries to the first project's
// webhook URL from senders goroutines, each waiting for its answer as
// Bitbucket does, for a while. The hook's token, UUID and secret come from
// Tether's database (opened read-only with its secret key), as Bitbucket
// would know them. After the run it checks that every acknowledged
// delivery is stored, and counts the commits they took.
func deliveries(args []string) error {
	fs := flag.NewFlagSet("deliveries", flag.ExitOnError)
	base := fs.String("url", "", "Tether's base URL")
	dataDir := fs.String("data-dir", "", "Tether's TETHER_DATA_DIR")
	key := fs.String("secret-key", "", "Tether's TETHER_SECRET_KEY")
	payload := fs.String("payload", "internal/bitbucket/testdata/recorded/webhook_push.json", "Bitbucket's recorded repo:push payload")
	senders := fs.Int("senders", 32, "concurrent senders")
	duration := fs.Duration("duration", 10*time.Second, "how long to send")
	fs.Parse(args)
	if *base == "" || *dataDir == "" || *key == "" {
		return errors.New("-url, -data-dir and -secret-key are required")
	}
	recorded, err := os.ReadFile(*payload)
	if err != nil {
		return err
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(*dataDir, "tether.db")+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	var (
		token, repoUUID, fullName, hookUUID string
		sealed                              []byte
	)
	err = db.QueryRow(`SELECT p.hook_token, p.repo_uuid, p.full_name, w.hook_uuid, w.secret FROM projects p
		JOIN webhooks w ON w.project_id = p.id AND w.state = 'active' ORDER BY p.id LIMIT 1`).
		Scan(&token, &repoUUID, &fullName, &hookUUID, &sealed)
	if err != nil {
		return fmt.Errorf("the project's webhook: %w", err)
	}
	box, err := secrets.NewBox(*key)
	if err != nil {
		return err
	}
	secret, err := box.Open(hookSecretPurpose, sealed)
	if err != nil {
		return fmt.Errorf("open the hook secret: %w", err)
	}
	recorded = bytes.ReplaceAll(recorded, []byte("{bc771cbf-829e-4c4b-b71f-a0eb3ac2b860}"), []byte(repoUUID))
	recorded = bytes.ReplaceAll(recorded, []byte("brydzewski/foo"), []byte(fullName))
	if !bytes.Contains(recorded, []byte(recordedHead)) {
		return fmt.Errorf("%s has no commit %s to vary", *payload, recordedHead)
	}
	var before int64
	if err := db.QueryRow(`SELECT coalesce(max(id), 0) FROM deliveries`).Scan(&before); err != nil {
		return err
	}

	// The load tool's own work is done before the clock starts, as wrk's
	// is: each delivery's head commit, X-Request-UUID and X-Hub-Signature
	// are made up front (enough for maxRate deliveries a second), and each
	// sender writes a request at once (sender), so the load tool spends its
	// CPU on sending only, not on the cores Tether measures on. Past the
	// prepared ones, deliveries are made while sending.
	pieces := bytes.Split(recorded, []byte(recordedHead))
	run := uint32(time.Now().UnixNano()) // bodies differ from an earlier run's too
	var seq atomic.Int64
	next := func() delivery {
		d := delivery{head: fmt.Sprintf("%08x%032x", run, seq.Add(1)), request: uuid.NewString()}
		d.signature = bitbucket.Sign(secret, bytes.Join(pieces, []byte(d.head)))
		return d
	}
	prepared := make([]delivery, min(int((*duration).Seconds()*maxRate), 1_000_000))
	for i := range prepared {
		prepared[i] = next()
	}
	var taken atomic.Int64

	target, err := url.Parse(*base + "/hooks/bitbucket/" + token)
	if err != nil {
		return err
	}
	var (
		mu       sync.Mutex
		took     []time.Duration
		statuses = map[int]int{}
		failures atomic.Int64
		wg       sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(*duration)
	for range *senders {
		wg.Go(func() {
			var mine []time.Duration
			seen := map[int]int{}
			s := sender{target: target, hookUUID: hookUUID, pieces: pieces}
			defer s.close()
			for time.Now().Before(deadline) {
				var d delivery
				if i := taken.Add(1) - 1; i < int64(len(prepared)) {
					d = prepared[i]
				} else {
					d = next()
				}
				t := time.Now()
				status, err := s.send(d)
				if err != nil {
					failures.Add(1)
					continue
				}
				mine = append(mine, time.Since(t))
				seen[status]++
			}
			mu.Lock()
			took = append(took, mine...)
			for s, n := range seen {
				statuses[s] += n
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	accepted := statuses[http.StatusAccepted]
	var stored, commits int
	if err := db.QueryRow(`SELECT count(*), count(DISTINCT received_at) FROM deliveries
		WHERE status = 'accepted' AND id > ?`, before).
		Scan(&stored, &commits); err != nil {
		return err
	}
	if stored != accepted || failures.Load() > 0 || accepted != len(took) {
		return fmt.Errorf("%d answered 202, %d stored, %d failed to send, answers by status %v", accepted, stored, failures.Load(), statuses)
	}
	result("tether-ingest", accepted, elapsed, took, fmt.Sprintf("deliveries/commit=%.1f", float64(stored)/float64(max(commits, 1))))
	if over := taken.Load() - int64(len(prepared)); over > 0 {
		fmt.Printf("note: %d deliveries were made while sending (past the %d prepared)\n", over, len(prepared))
	}
	return nil
}

// maxRate is how many deliveries a second the sender prepares for before
// it starts: well above what two cores store.
const maxRate = 10_000

// delivery is one prepared delivery: the push's new head commit, its
// X-Request-UUID, and the X-Hub-Signature of its body.
type delivery struct{ head, request, signature string }

// sender is one of Bitbucket's senders as a lean load tool (wrk) is one:
// a keep-alive HTTP/1.1 connection of its own, each request (head and
// body) written with one write and its answer read before the next. Go's
// http.Transport, with two goroutines a connection, a flush of the head
// before a body it cannot size and a write per body piece, spent as much
// of the two cores as Tether itself did.
type sender struct {
	target   *url.URL
	hookUUID string
	pieces   [][]byte // the recorded payload around its head commit
	conn     net.Conn
	r        *bufio.Reader
	buf      []byte // the request being sent, reused
}

// send posts d and returns the answer's status code, after reading the
// whole answer. A connection that fails or is closed is dialled again on
// the next send.
func (s *sender) send(d delivery) (int, error) {
	if s.conn == nil {
		c, err := net.Dial("tcp", s.target.Host)
		if err != nil {
			return 0, err
		}
		s.conn, s.r = c, bufio.NewReader(c)
	}
	body := 0
	for i, p := range s.pieces {
		if i > 0 {
			body += len(d.head)
		}
		body += len(p)
	}
	b := s.buf[:0]
	b = fmt.Appendf(b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nUser-Agent: Bitbucket-Webhooks/2.0\r\n",
		s.target.RequestURI(), s.target.Host)
	b = fmt.Appendf(b, "X-Event-Key: repo:push\r\nX-Hook-UUID: %s\r\nX-Request-UUID: %s\r\nX-Attempt-Number: 1\r\n",
		s.hookUUID, d.request)
	b = fmt.Appendf(b, "X-Hub-Signature: %s\r\nContent-Length: %d\r\n\r\n", d.signature, body)
	for i, p := range s.pieces {
		if i > 0 {
			b = append(b, d.head...)
		}
		b = append(b, p...)
	}
	s.buf = b
	if _, err := s.conn.Write(b); err != nil {
		s.close()
		return 0, err
	}
	resp, err := http.ReadResponse(s.r, nil)
	if err != nil {
		s.close()
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.Close {
		s.close()
	}
	return resp.StatusCode, err
}

func (s *sender) close() {
	if s.conn != nil {
		s.conn.Close()
		s.conn, s.r = nil, nil
	}
}
