package main

import (
	"bytes"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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
	// are made up front (enough for maxRate deliveries a second), and a
	// body is sent as the recorded payload's pieces around its head, so a
	// sender spends its CPU on HTTP only, not on the cores Tether measures
	// on. Past the prepared ones, deliveries are made while sending.
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

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = *senders, *senders
	tr.WriteBufferSize = 64 << 10 // a whole delivery in one write, as its pieces are sent
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	target := *base + "/hooks/bitbucket/" + token
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
			for time.Now().Before(deadline) {
				var d delivery
				if i := taken.Add(1) - 1; i < int64(len(prepared)) {
					d = prepared[i]
				} else {
					d = next()
				}
				req, _ := http.NewRequest(http.MethodPost, target, d.body(pieces))
				req.ContentLength = int64(len(recorded) - (len(pieces)-1)*(len(recordedHead)-len(d.head)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("User-Agent", "Bitbucket-Webhooks/2.0")
				req.Header.Set("X-Event-Key", "repo:push")
				req.Header.Set("X-Hook-UUID", hookUUID)
				req.Header.Set("X-Request-UUID", d.request)
				req.Header.Set("X-Attempt-Number", "1")
				req.Header.Set("X-Hub-Signature", d.signature)
				t := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					failures.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mine = append(mine, time.Since(t))
				seen[resp.StatusCode]++
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
	tr.CloseIdleConnections()

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

// body is the recorded payload with d's head in place of the recorded
// one, read from the shared pieces (nothing copied).
func (d delivery) body(pieces [][]byte) io.Reader {
	readers := make([]io.Reader, 0, 2*len(pieces)-1)
	for i, p := range pieces {
		if i > 0 {
			readers = append(readers, strings.NewReader(d.head))
		}
		readers = append(readers, bytes.NewReader(p))
	}
	return io.MultiReader(readers...)
}
