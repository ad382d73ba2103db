package tether

import (
	"strings"
	"time"
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
	Status      string // accepted | refused
	Reason      string // why it was refused, or a note on an accepted one
	Size        int
	ReceivedAt  time.Time
}

// Workflow is a run a delivery started.
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
	Delivery  Delivery
	Workflows []Workflow
}

// AcceptResult says what happened to one Accept.
type AcceptResult struct {
	Duplicate bool // an accepted delivery with this request uuid exists
	Err       error
}
