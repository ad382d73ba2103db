package tether

import (
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Marker is how Tether signs every deploy key and webhook it creates, so
// that it can tell its own from anyone else's on a repository, and one of
// its projects' from another's — after a create Bitbucket finished when
// Tether had stopped waiting, or a delete it never heard back from.
//
// The key's label, or the hook's description, ends in the marker:
//
//	Tether: acme/api [tether:ci.example.com/projects/7#3f9a0c1b]
//
// "ci.example.com" is the instance — Tether's public URL without its
// scheme (host, port, path), so two Tethers on one repository keep apart;
// "/projects/7" is the project (its page on that Tether); "#3f9a0c1b", the
// attempt, is random for each create, so the very key or hook one create
// made is recognised. The text before the marker is for people and may
// change. Project ids are never reused (see the store), so a marker names
// one project for good.
type Marker struct {
	Instance  string
	ProjectID int64
	Attempt   string // "" on a marker that names no attempt
}

// markerPattern finds a marker at the end of a label or description.
var markerPattern = regexp.MustCompile(`\[tether:([^\s\[\]#]+)/projects/([0-9]+)(?:#([0-9a-z]+))?\]\s*$`)

// String is the marker as it appears in a label: "[tether:…]".
func (m Marker) String() string {
	s := "[tether:" + m.Instance + "/projects/" + strconv.FormatInt(m.ProjectID, 10)
	if m.Attempt != "" {
		s += "#" + m.Attempt
	}
	return s + "]"
}

// MaxLabel is the longest label or description Tether writes: Bitbucket's
// deploy key labels and webhook descriptions are short strings, and 255
// characters fit both.
const MaxLabel = 255

// Label is what a key or hook of the project named name carries on
// Bitbucket: "Tether: name [marker]", the name cut short when the whole
// would pass MaxLabel, never the marker.
func (m Marker) Label(name string) string {
	tail := " " + m.String()
	head := "Tether: " + name
	if room := MaxLabel - len(tail); len(head) > room {
		cut := 0
		for i := range head {
			if i > room-len("…") {
				break
			}
			cut = i
		}
		head = head[:cut] + "…"
	}
	return head + tail
}

// ParseMarker reads the marker a label or description ends in.
func ParseMarker(label string) (Marker, bool) {
	m := markerPattern.FindStringSubmatch(label)
	if m == nil {
		return Marker{}, false
	}
	id, err := strconv.ParseInt(m[2], 10, 64)
	if err != nil {
		return Marker{}, false
	}
	return Marker{Instance: m[1], ProjectID: id, Attempt: m[3]}, true
}

// Same reports whether a label's marker names this marker's project on
// this instance, whatever its attempt.
func (m Marker) Same(label string) bool {
	o, ok := ParseMarker(label)
	return ok && o.Instance == m.Instance && o.ProjectID == m.ProjectID
}

// InstanceOf is the instance part of markers for a public URL: host, port
// and path without the scheme or a trailing slash ("ci.example.com",
// "localhost:8080", "example.com/tether").
func InstanceOf(publicURL string) string {
	u, err := url.Parse(publicURL)
	if err != nil || u.Host == "" {
		return strings.TrimRight(publicURL, "/")
	}
	return strings.ToLower(u.Host) + strings.TrimRight(u.EscapedPath(), "/")
}

// Leftover is a deploy key or webhook Tether put on a repository and no
// longer wants there — replaced, undone, or its project deleted — or one a
// create may have made although Tether never heard back (RemoteID empty).
// It is recorded in the transaction that lets go of the part, so nothing
// Tether made is ever forgotten before Bitbucket confirms it gone; the
// cleanup retries it with the backoff of its attempts and writes the
// outcome to the audit log.
type Leftover struct {
	ID          int64
	OrgID       int64
	ProjectID   int64 // kept after the project is deleted
	ProjectName string
	OwnerID     int64  // whose Bitbucket connection removes it
	RepoUUID    string // the repository, found by UUID wherever it moved
	FullName    string // where the repository was last seen, "workspace/slug"
	Part        string // PartDeployKey or PartWebhook
	RemoteID    string // the key's id or the hook's uuid; "" when the create never answered
	Label       string // what it carries on Bitbucket, for people
	Match       string // an unanswered create: the key's fingerprint, or the hook's marker attempt
	Why         string // why it is left over, for people and the audit log
	Attempts    int
	NextAt      time.Time
	CreatedAt   time.Time
}

// Name says which part a leftover is, for people: "deploy key 12
// (Tether: acme/api …)", "webhook {…}", or "the webhook Tether asked for".
func (l Leftover) Name() string {
	what := PartName(l.Part)
	switch {
	case l.RemoteID == "":
		return "the " + what + " Tether asked Bitbucket to create (" + l.Label + ")"
	case l.Part == PartWebhook:
		return what + " {" + NormalizeHookUUID(l.RemoteID) + "}"
	case l.Label != "":
		return what + " " + l.RemoteID + " (" + l.Label + ")"
	}
	return what + " " + l.RemoteID
}
