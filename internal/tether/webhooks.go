package tether

import (
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Webhook is the hook Tether created on a project's repository.
type Webhook struct {
	ID        int64
	ProjectID int64
	UUID      string // without braces, lower case
	URL       string
	Events    []string
	Secret    string // plaintext in memory, sealed in the table, never shown
	State     string // active | retiring
	RetiredAt time.Time
	CreatedAt time.Time
}

// Delivery is one request Bitbucket sent to a project's hook URL.
type Delivery struct {
	ID          int64
	ProjectID   int64 // 0 when the URL matched no project
	RequestUUID string
	HookUUID    string
	EventKey    string
	Attempt     int
	Status      string // accepted (refusals are counted in Refusal instead)
	Reason      string // a note on an accepted one
	Size        int
	ReceivedAt  time.Time
}

// Workflow is a run a delivery started. It is keyed by what it would
// build — project, trigger, ref (type and name) and commit — in the
// database: a second delivery naming the same build starts nothing (see
// AlreadyBuilt).
type Workflow struct {
	ID          int64
	ProjectID   int64
	DeliveryID  int64
	Trigger     string // push | pull_request
	RefType     string // branch | tag
	RefName     string
	CommitHash  string
	Message     string
	Author      string
	CommittedAt time.Time
	CreatedAt   time.Time
}

// AlreadyBuilt is the delivery note for a workflow that was not started
// because the same build exists: "no new commit: branch main at 141977f
// was already built".
func (w Workflow) AlreadyBuilt() string {
	what := w.RefType + " " + w.RefName
	if w.Trigger == TriggerPullRequest {
		what = "pull request source " + w.RefName
	}
	return "no new commit: " + what + " at " + ShortHash(w.CommitHash) + " was already built"
}

// ShortHash is the first 7 characters of a commit hash, as Git shows it.
func ShortHash(h string) string {
	if len(h) > 7 {
		return h[:7]
	}
	return h
}

// MaxReason bounds a delivery's reason: a push can name many refs.
const MaxReason = 300

// JoinReasons joins the notes on why parts of a delivery started nothing
// into one reason of at most MaxReason bytes.
func JoinReasons(notes []string) string {
	s := strings.Join(notes, "; ")
	if len(s) <= MaxReason {
		return s
	}
	cut := MaxReason - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// Delivery statuses.
const (
	Accepted = "accepted"
	Refused  = "refused"
)

// NormalizeHookUUID strips braces and lower-cases, so the uuid Bitbucket
// sends in X-Hook-UUID (without braces) and the one its API returns (with
// braces) compare equal.
func NormalizeHookUUID(u string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(u), "{"), "}"))
}

// Accept is an accepted delivery with the workflows it starts.
type Accept struct {
	Delivery   Delivery
	BodySHA256 []byte // the raw body's SHA-256, to recognise a replay
	Workflows  []Workflow
}

// AcceptResult says what happened to one Accept.
type AcceptResult struct {
	Duplicate bool   // an accepted delivery with this request uuid exists
	Replay    bool   // the project accepted this very body within ReplayWindow
	Started   int    // workflows started (the others were built already)
	Reason    string // the delivery's reason as stored, notes on what started nothing
	Err       error
}

// ReplayWindow is how long an accepted body is remembered: the same body
// again within it (under any X-Request-UUID) starts nothing.
const ReplayWindow = 24 * time.Hour

// Refusal counts the deliveries to one project's webhook URL that were
// refused for one reason. Refusals are counted, not stored one by one, so
// forged deliveries cost no disk and never push accepted ones out of a
// project's list.
type Refusal struct {
	ProjectID int64
	Reason    string // one of a fixed set of reasons (see package webhooks)
	Count     int64
	FirstSeen time.Time
	LastSeen  time.Time
	Samples   []RefusalSample // the latest few, newest first
}

// MaxRefusalSamples is how many samples a Refusal keeps.
const MaxRefusalSamples = 3

// RefusalSample is what one refused delivery said about itself; its
// strings are cut to MaxSampleField characters of printable ASCII.
type RefusalSample struct {
	At          time.Time
	RequestUUID string
	HookUUID    string
	EventKey    string
	Attempt     int
	Size        int // body bytes read (at most the limit)
}

// MaxSampleField bounds each string of a RefusalSample: a UUID in braces
// is 38 characters, Bitbucket's longest event key under 40.
const MaxSampleField = 64

// Add counts o into r: counts add up, first and last seen widen, and the
// newest samples of both are kept.
func (r *Refusal) Add(o Refusal) {
	if r.Count == 0 || (!o.FirstSeen.IsZero() && o.FirstSeen.Before(r.FirstSeen)) {
		r.FirstSeen = o.FirstSeen
	}
	if o.LastSeen.After(r.LastSeen) {
		r.LastSeen = o.LastSeen
	}
	r.Count += o.Count
	all := append(append([]RefusalSample{}, o.Samples...), r.Samples...)
	slices.SortStableFunc(all, func(a, b RefusalSample) int { return b.At.Compare(a.At) })
	r.Samples = all[:min(len(all), MaxRefusalSamples)]
}
