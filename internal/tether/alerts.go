package tether

import "time"

// Alert channel kinds an organization's admins set on the Team page.
const (
	ChannelEmail   = "email"   // e-mail over SMTP to the admins (and the backer)
	ChannelWebhook = "webhook" // a Slack-compatible incoming-webhook URL, signed
)

// AlertChannel is where an organization's alerts go. URL and Secret are
// plaintext in memory, sealed in the table, and never shown whole.
type AlertChannel struct {
	ID          int64
	OrgID       int64
	Kind        string // ChannelEmail | ChannelWebhook
	EmailBacker bool   // e-mail: also the person backing the project
	URL         string // webhook: where to POST (its path often holds a token)
	Secret      string // webhook: the HMAC key receivers verify with
	CreatedAt   time.Time
	LastSentAt  time.Time
	LastError   string // the last failure, cleared by a success
	LastErrorAt time.Time
}

// SubjectConnection is the incident subject for the Bitbucket connection
// backing a project; the other subjects are the parts (PartDeployKey,
// PartWebhook).
const SubjectConnection = "connection"

// Incident is one stretch of time a subject of a project was invalid: it
// opens when Tether records "invalid" (never "could not check") and closes
// when it records "valid" again. At most one is open per subject.
type Incident struct {
	ID         int64
	OrgID      int64
	ProjectID  int64
	Subject    string // PartDeployKey | PartWebhook | SubjectConnection
	Reason     string
	Detail     string
	OpenedAt   time.Time
	NotifiedAt time.Time // the last alert or reminder about it
	ClosedAt   time.Time
}

// Alert kinds.
const (
	AlertBroken    = "broken"
	AlertRecovered = "recovered"
	AlertReminder  = "reminder"
	AlertTest      = "test"
)

// Alert is one message Tether composed; its deliveries say where it went.
type Alert struct {
	ID          int64
	OrgID       int64
	ProjectID   int64 // 0 for a test
	IncidentID  int64 // 0 for a test
	Kind        string
	Subject     string
	ProjectName string
	Title       string // one line: the e-mail subject
	Text        string // the message, plain text
	Link        string // the project page
	CreatedAt   time.Time
	Deliveries  []AlertDelivery
}

// Delivery statuses of an alert to one channel.
const (
	DeliveryPending = "pending" // waiting for its (next) attempt
	DeliverySent    = "sent"
	DeliveryFailed  = "failed" // gave up after the last attempt
	DeliveryDemo    = "demo"   // demo mode: shown in the Outbox, never sent
)

// AlertDelivery is one alert to one channel.
type AlertDelivery struct {
	ID            int64
	AlertID       int64
	ChannelID     int64
	ChannelKind   string
	Recipients    string // e-mail addresses, or the masked webhook URL
	Status        string
	Attempts      int
	NextAttemptAt time.Time
	SentAt        time.Time
	LastError     string
}

// Watched is what the alert watcher reads about one project each tick:
// the recorded health of both parts and the backing connection's status.
type Watched struct {
	Project          Project
	Parts            []Health // as recorded; a part never checked is absent
	ConnectionStatus string   // Connected, NotConnected, or "" (never connected)
	ConnectionReason string
}

// OutgoingAlert is a delivery due for an attempt, with what sending it
// needs.
type OutgoingAlert struct {
	Alert    Alert
	Delivery AlertDelivery
	Channel  AlertChannel
}
