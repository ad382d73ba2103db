package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Hook is a repository webhook subscription. Secret is exposed here for
// tests; the API only ever says whether one is set.
type Hook struct {
	UUID                 string // "{…}"
	Description          string
	URL                  string
	Active               bool
	Events               []string // sorted
	Secret               string
	SkipCertVerification bool
	CreatedAt            time.Time
}

// hookEvents are the repository-level event keys Bitbucket accepts.
var hookEvents = []string{
	"issue:comment_created", "issue:created", "issue:updated",
	"pullrequest:approved", "pullrequest:changes_request_created", "pullrequest:changes_request_removed",
	"pullrequest:comment_created", "pullrequest:comment_deleted", "pullrequest:comment_reopened",
	"pullrequest:comment_resolved", "pullrequest:comment_updated", "pullrequest:created",
	"pullrequest:fulfilled", "pullrequest:rejected", "pullrequest:unapproved", "pullrequest:updated",
	"repo:commit_comment_created", "repo:commit_status_created", "repo:commit_status_updated",
	"repo:deleted", "repo:fork", "repo:imported", "repo:push", "repo:transfer", "repo:updated",
}

const msgNoHook = "Webhook not found"

// checkHook validates what a client may set on a hook, returning the field
// at fault and Bitbucket's (Django's) message for it.
func checkHook(rawURL string, events []string) (field, msg string) {
	if msg := checkHookURL(rawURL); msg != "" {
		return "url", msg
	}
	if msg := checkHookEvents(events); msg != "" {
		return "events", msg
	}
	return "", ""
}

func checkHookURL(rawURL string) string {
	if rawURL == "" {
		return "This field is required."
	}
	if u, err := url.Parse(rawURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "Enter a valid URL."
	}
	return ""
}

func checkHookEvents(events []string) string {
	if len(events) == 0 {
		return "This field is required."
	}
	for _, ev := range events {
		if !slices.Contains(hookEvents, ev) {
			return fmt.Sprintf("Select a valid choice. %s is not one of the available choices.", ev)
		}
	}
	return ""
}

func sortedEvents(events []string) []string {
	out := slices.Clone(events)
	slices.Sort(out)
	return slices.Compact(out)
}

// hookID accepts a hook uuid with or without braces.
func hookID(id string) string { return "{" + strings.Trim(id, "{}") + "}" }

func (r *repo) hookByID(id string) *Hook {
	id = hookID(id)
	for _, h := range r.hooks {
		if strings.EqualFold(h.UUID, id) {
			return h
		}
	}
	return nil
}

// AddHook subscribes a webhook on the repository, as POST …/hooks does. UUID
// and CreatedAt are filled in.
func (e *Emulator) AddHook(fullName string, h Hook) (Hook, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.repoByFullName(fullName)
	if r == nil {
		return Hook{}, fmt.Errorf("no repository %s", fullName)
	}
	if field, msg := checkHook(h.URL, h.Events); field != "" {
		return Hook{}, fmt.Errorf("%s: %s", field, msg)
	}
	return *e.addHook(r, h), nil
}

func (e *Emulator) addHook(r *repo, h Hook) *Hook {
	h.UUID = newUUID()
	h.CreatedAt = time.Now()
	h.Events = sortedEvents(h.Events)
	r.hooks = append(r.hooks, &h)
	return &h
}

// Hooks lists the repository's webhooks, secrets included.
func (e *Emulator) Hooks(fullName string) []Hook {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.repoByFullName(fullName)
	if r == nil {
		return nil
	}
	out := make([]Hook, 0, len(r.hooks))
	for _, h := range r.hooks {
		c := *h
		c.Events = slices.Clone(h.Events)
		out = append(out, c)
	}
	return out
}

// DeleteHook deletes a webhook, as someone doing it on Bitbucket would.
func (e *Emulator) DeleteHook(fullName, uuid string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r := e.repoByFullName(fullName); r != nil {
		id := hookID(uuid)
		r.hooks = slices.DeleteFunc(r.hooks, func(h *Hook) bool { return strings.EqualFold(h.UUID, id) })
	}
}

// SetHookActive (de)activates a webhook; inactive hooks get no deliveries.
func (e *Emulator) SetHookActive(fullName, uuid string, active bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if h := e.hookOf(fullName, uuid); h != nil {
		h.Active = active
	}
}

// EditHook changes a webhook behind its owner's back: a non-empty url
// replaces the URL, non-nil events replace the events, clearSecret removes
// the secret.
func (e *Emulator) EditHook(fullName, uuid string, url string, events []string, clearSecret bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	_ = e.editHook(fullName, uuid, url, events, clearSecret)
}

func (e *Emulator) editHook(fullName, uuid string, url string, events []string, clearSecret bool) error {
	h := e.hookOf(fullName, uuid)
	if h == nil {
		return fmt.Errorf("no webhook %s on %s", uuid, fullName)
	}
	if url != "" {
		h.URL = url
	}
	if events != nil {
		h.Events = sortedEvents(events)
	}
	if clearSecret {
		h.Secret = ""
	}
	return nil
}

func (e *Emulator) hookOf(fullName, uuid string) *Hook {
	r := e.repoByFullName(fullName)
	if r == nil {
		return nil
	}
	return r.hookByID(uuid)
}

func hookURL(s site, r *repo, h *Hook) string {
	return s.api() + "/repositories/" + repoPath(r) + "/hooks/" + seg(h.UUID)
}

// hookJSON is shaped like recorded/api_hook.json plus secret_set; the secret
// itself is never returned.
func hookJSON(s site, r *repo, h *Hook) map[string]any {
	return map[string]any{
		"type":                   "webhook_subscription",
		"uuid":                   h.UUID,
		"url":                    h.URL,
		"description":            h.Description,
		"subject_type":           "repository",
		"subject":                repoRef(s, r),
		"active":                 h.Active,
		"events":                 h.Events,
		"created_at":             h.CreatedAt.UTC().Format("2006-01-02T15:04:05.000000Z"),
		"read_only":              false,
		"skip_cert_verification": h.SkipCertVerification,
		"source":                 nil,
		"secret_set":             h.Secret != "",
		"links":                  map[string]any{"self": href(hookURL(s, r, h))},
	}
}

// hookInput is a hook request body. Raw fields tell "absent" (keep) from
// "null" (clear) for the secret on update.
type hookInput struct {
	Description          *string         `json:"description"`
	URL                  *string         `json:"url"`
	Active               *bool           `json:"active"`
	Events               []string        `json:"events"`
	Secret               json.RawMessage `json:"secret"`
	SkipCertVerification *bool           `json:"skip_cert_verification"`
}

// secret interprets the secret field: (value, true) to set or clear it,
// (_, false) to leave it alone.
func (in hookInput) secret() (string, bool, error) {
	if in.Secret == nil {
		return "", false, nil
	}
	if string(in.Secret) == "null" {
		return "", true, nil
	}
	var s string
	if err := json.Unmarshal(in.Secret, &s); err != nil {
		return "", false, errors.New("Secret must be a string.")
	}
	return s, true, nil
}

func (in hookInput) apply(h *Hook) *reply {
	if in.Description != nil {
		h.Description = *in.Description
	}
	if in.URL != nil {
		h.URL = *in.URL
	}
	if in.Active != nil {
		h.Active = *in.Active
	}
	if in.Events != nil {
		h.Events = sortedEvents(in.Events)
	}
	if in.SkipCertVerification != nil {
		h.SkipCertVerification = *in.SkipCertVerification
	}
	secret, set, err := in.secret()
	if err != nil {
		rep := fieldError("secret", err.Error())
		return &rep
	}
	if set {
		h.Secret = secret
	}
	if field, msg := checkHook(h.URL, h.Events); field != "" {
		rep := fieldError(field, msg)
		return &rep
	}
	return nil
}

func (c *apiCall) hookInput() (hookInput, *reply) {
	var in hookInput
	if err := json.Unmarshal(c.body, &in); err != nil {
		rep := fail(http.StatusBadRequest, "Malformed JSON in the request body")
		return in, &rep
	}
	return in, nil
}

func apiListHooks(c *apiCall) reply {
	r, rep := c.adminRepo()
	if rep != nil {
		return *rep
	}
	values := make([]any, 0, len(r.hooks))
	for _, h := range r.hooks {
		values = append(values, hookJSON(c.s, r, h))
	}
	return c.page(values)
}

func apiAddHook(c *apiCall) reply {
	r, rep := c.adminRepo()
	if rep != nil {
		return *rep
	}
	in, rep := c.hookInput()
	if rep != nil {
		return *rep
	}
	h := Hook{Active: true}
	if rep := in.apply(&h); rep != nil {
		return *rep
	}
	x := c.e.addHook(r, h)
	return reply{status: http.StatusCreated, body: hookJSON(c.s, r, x), location: hookURL(c.s, r, x)}
}

func (c *apiCall) lookupHook() (*repo, *Hook, *reply) {
	r, rep := c.adminRepo()
	if rep != nil {
		return nil, nil, rep
	}
	h := r.hookByID(c.p["hook"])
	if h == nil {
		nf := fail(http.StatusNotFound, msgNoHook)
		return nil, nil, &nf
	}
	return r, h, nil
}

func apiGetHook(c *apiCall) reply {
	r, h, rep := c.lookupHook()
	if rep != nil {
		return *rep
	}
	return ok(hookJSON(c.s, r, h))
}

func apiUpdateHook(c *apiCall) reply {
	r, h, rep := c.lookupHook()
	if rep != nil {
		return *rep
	}
	in, rep := c.hookInput()
	if rep != nil {
		return *rep
	}
	// Validate on a copy so a rejected update changes nothing.
	updated := *h
	if rep := in.apply(&updated); rep != nil {
		return *rep
	}
	*h = updated
	return ok(hookJSON(c.s, r, h))
}

func apiDeleteHook(c *apiCall) reply {
	r, h, rep := c.lookupHook()
	if rep != nil {
		return *rep
	}
	r.hooks = slices.DeleteFunc(r.hooks, func(x *Hook) bool { return x == h })
	return reply{status: http.StatusNoContent}
}
