// Package deprecations notices when Bitbucket retires an API Tether uses:
// any 410 Gone, whose message names the change (e.g. "CHANGE-2770 -
// Functionality has been deprecated"). It watches every answer the
// Bitbucket client receives, as an http.RoundTripper around its transport,
// records each change once in the store, logs it once, counts every such
// answer, and gives admins the list for a banner. A 410 is about
// Bitbucket's API, never a project's failure.
package deprecations

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"tether/internal/bitbucket"
	"tether/internal/tether"
)

// Store is the part of the database deprecations use.
type Store interface {
	RecordDeprecation(ctx context.Context, d tether.Deprecation) (bool, error)
	Deprecations(ctx context.Context) ([]tether.Deprecation, error)
}

// Recorder records the retirements Bitbucket announces.
type Recorder struct {
	log   *slog.Logger
	store Store

	mu     sync.Mutex
	known  []tether.Deprecation // what the banner shows, newest first
	counts map[string]uint64    // 410 answers seen per change, since start
}

// New returns a recorder that knows the retirements already stored.
func New(ctx context.Context, log *slog.Logger, store Store) (*Recorder, error) {
	known, err := store.Deprecations(ctx)
	if err != nil {
		return nil, err
	}
	return &Recorder{log: log, store: store, known: known, counts: map[string]uint64{}}, nil
}

// Active lists the retirements recorded, newest first, for the banner.
func (r *Recorder) Active() []tether.Deprecation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]tether.Deprecation(nil), r.known...)
}

// Counts is how many 410 answers were seen per change since Tether started
// ("" for a 410 naming none): the hook for the counter
// tether_bitbucket_deprecated_responses_total{change} on /metrics.
func (r *Recorder) Counts() map[string]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]uint64, len(r.counts))
	for k, v := range r.counts {
		out[k] = v
	}
	return out
}

// maxErrorBody bounds what is read of a 410's body; Bitbucket's error
// objects are a few hundred bytes.
const maxErrorBody = 16 << 10

// Transport returns next (http.DefaultTransport when nil) wrapped so every
// 410 Gone it carries is recorded. The answer reaches the caller
// unchanged.
func (r *Recorder) Transport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return roundTripper{r, next}
}

type roundTripper struct {
	r    *Recorder
	next http.RoundTripper
}

func (t roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusGone {
		return resp, err
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if rerr != nil {
		return resp, nil
	}
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	json.Unmarshal(body, &e)
	t.r.Observe(req.Context(), req.Method, req.URL.Path, e.Error.Message)
	return resp, nil
}

// Observe records one 410 answer to method path with Bitbucket's message:
// counted always, stored and logged the first time its change is seen.
func (r *Recorder) Observe(ctx context.Context, method, path, message string) {
	change := bitbucket.ChangeOf(message)
	r.mu.Lock()
	r.counts[change]++
	r.mu.Unlock()
	if change == "" {
		r.log.Warn("Bitbucket answered 410 Gone without naming a change", "method", method, "path", Endpoint(path))
		return
	}
	d := tether.Deprecation{Change: change, Message: clip(message, 300), Method: method, Path: Endpoint(path)}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	first, err := r.store.RecordDeprecation(ctx, d)
	if err != nil {
		r.log.Error("record Bitbucket deprecation", "change", change, "err", err)
		return
	}
	if !first {
		return
	}
	r.log.Warn("Bitbucket retired an API Tether uses", "change", change, "method", method, "path", d.Path, "message", d.Message)
	d.FirstSeen, d.LastSeen, d.Count = time.Now().UTC(), time.Now().UTC(), 1
	r.mu.Lock()
	r.known = append([]tether.Deprecation{d}, r.known...)
	r.mu.Unlock()
}

// apiWords are the literal segments of Bitbucket's API paths; any other
// segment (a workspace, repository, id or uuid) is shown as {…}, so the
// banner names the endpoint and nothing of anyone's.
var apiWords = map[string]bool{
	"2.0": true, "user": true, "users": true, "emails": true, "workspaces": true, "permissions": true, "permission": true,
	"repositories": true, "hooks": true, "deploy-keys": true, "refs": true, "branches": true, "tags": true,
	"commits": true, "commit": true, "src": true, "pullrequests": true, "projects": true, "members": true,
	"teams": true, "snippets": true, "pipelines": true, "statuses": true, "diff": true, "patch": true, "search": true,
}

// Endpoint is path with every segment that is not an API word replaced by
// {…}, e.g. "/2.0/repositories/acme/api/hooks" → "/2.0/repositories/{…}/{…}/hooks".
func Endpoint(path string) string {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i, s := range segs {
		if !apiWords[s] {
			segs[i] = "{…}"
		}
	}
	return "/" + strings.Join(segs, "/")
}

// clip keeps the first n bytes of s on one line, cut on a rune boundary.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
