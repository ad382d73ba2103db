package emulator

import (
	"cmp"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Messages Bitbucket uses in API error bodies.
const (
	msgExpired     = "Access token expired. Use your refresh token to obtain a new access token."
	msgBadToken    = "Token is invalid, expired, or not supported for this endpoint."
	msgScopes      = "Your credentials lack one or more required privilege scopes."
	msgRemoved     = "CHANGE-2770 - Functionality has been deprecated"
	msgNoResource  = "Resource not found"
	msgNoAPI       = "There is no API hosted at this URL.\n\nFor information about our API's, please refer to the documentation at: https://developer.atlassian.com/bitbucket/api/2/reference/"
	msgRateLimited = "Rate limit for this resource has been exceeded"
)

// Failure describes injected API failures, for testing how a client copes
// with Bitbucket being slow, rate limiting or broken.
type Failure struct {
	// PathPrefix is matched against the request path after /2.0, e.g.
	// "/user"; "" matches every API call. "/site/oauth2/access_token" (or a
	// prefix of it starting with "/site/") targets the token endpoint, which
	// "" does not.
	PathPrefix string
	// Status is the status to answer, e.g. 401, 429 or 500. 0 with Stall set
	// answers normally after the stall.
	Status int
	// RetryAfter is sent as the Retry-After header (seconds) when set.
	RetryAfter int
	// Stall delays the answer by this long, or until the client gives up.
	Stall time.Duration
	// Times is how many requests the failure affects; 0 means until
	// ClearFailures.
	Times int
	// Method limits the failure to one HTTP method (e.g. "DELETE"); ""
	// matches every method.
	Method string
	// Commit carries the request out even when the client gives up: at
	// the end of the Stall, whatever the client did meanwhile — a create
	// Bitbucket finishes after the client's timeout — and then answers
	// normally, or with Status when it is set (done, yet answered as
	// failed). The token endpoint ignores Status after a commit.
	Commit bool
	// Message, Fields and Detail shape the error body as Bitbucket's API
	// does ({"type":"error","error":{"message","fields","detail"}}):
	// Message replaces the status's usual message, Fields gives a reason
	// per field (e.g. {"url": ["Enter a valid URL."]}), Detail is text or
	// an object such as {"required": ["webhook"], "granted": [...]}. On
	// the token endpoint Message is the error_description and the body is
	// OAuth's {"error","error_description"}, with OAuthError as the code.
	Message    string
	Fields     map[string][]string
	Detail     any
	OAuthError string
}

type failure struct {
	Failure
	left int
}

// matches reports whether the failure applies to a request. A repository
// in PathPrefix is named by its full name ("/repositories/acme/api/hooks")
// and matches requests that address it by "{uuid}" too (canonical is the
// path with the repository's current workspace and slug).
func (f *failure) matches(method, path, canonical string) bool {
	if f.Method != "" && f.Method != method {
		return false
	}
	p := f.PathPrefix
	if path == tokenPath {
		return strings.HasPrefix(p, "/site/") && strings.HasPrefix(tokenPath, p)
	}
	return !strings.HasPrefix(p, "/site/") && (strings.HasPrefix(path, p) || strings.HasPrefix(canonical, p))
}

// canonicalPath is an API path with its repository named by its current
// workspace and slug, however the request addressed it. Callers hold e.mu.
func (e *Emulator) canonicalPath(path string) string {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(segs) < 3 || segs[0] != "repositories" {
		return path
	}
	r := e.repoByPath(segs[1], segs[2])
	if r == nil {
		return path
	}
	segs[1], segs[2] = r.ws.Slug, r.slug
	return "/" + strings.Join(segs, "/")
}

// FailAPI injects a failure. Failures are tried in the order they were added
// and the first matching one applies.
func (e *Emulator) FailAPI(f Failure) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failures = append(e.failures, &failure{Failure: f, left: f.Times})
}

// ClearFailures removes every injected failure.
func (e *Emulator) ClearFailures() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failures = nil
}

// injectFailure applies the first failure matching path. It reports whether
// the request should still be served, and returns the failure whose Status
// answers it once served (Commit).
func (e *Emulator) injectFailure(w http.ResponseWriter, r *http.Request, path string) (*Failure, bool) {
	e.mu.Lock()
	canonical := e.canonicalPath(path)
	var f *Failure
	for i, x := range e.failures {
		if !x.matches(r.Method, path, canonical) {
			continue
		}
		f = &x.Failure
		if x.Times > 0 {
			x.left--
			if x.left <= 0 {
				e.failures = slices.Delete(e.failures, i, i+1)
			}
		}
		break
	}
	e.mu.Unlock()
	if f == nil {
		return nil, true
	}
	if f.Stall > 0 {
		// The lock is not held here, so a stall never blocks other clients.
		t := time.NewTimer(f.Stall)
		gaveUp := r.Context().Done()
		if f.Commit {
			gaveUp = nil // carried out whatever the client does
		}
		select {
		case <-t.C:
		case <-gaveUp:
			t.Stop()
			return nil, false
		}
	}
	if f.Commit {
		return f, true
	}
	if f.Status == 0 {
		return nil, true
	}
	writeFailure(w, path, f)
	return nil, false
}

// writeFailure answers with an injected failure's status.
func writeFailure(w http.ResponseWriter, path string, f *Failure) {
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
	}
	if path == tokenPath {
		writeJSON(w, f.Status, oauthError{cmp.Or(f.OAuthError, oauthFailureCode(f.Status)), cmp.Or(f.Message, failureMessage(f.Status))})
		return
	}
	body := errorBody(cmp.Or(f.Message, failureMessage(f.Status)), f.Detail)
	body.Error.Fields = f.Fields
	writeJSON(w, f.Status, body)
}

// oauthFailureCode is the OAuth error code (RFC 6749 §5.2, and §4.1.2.1's
// server_error / temporarily_unavailable) an injected status stands for.
func oauthFailureCode(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return "rate_limited"
	case status == http.StatusServiceUnavailable:
		return "temporarily_unavailable"
	case status >= 500:
		return "server_error"
	case status == http.StatusUnauthorized:
		return "invalid_client"
	}
	return "invalid_request"
}

func failureMessage(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return msgExpired
	case http.StatusNotFound:
		return msgNoResource
	case http.StatusTooManyRequests:
		return msgRateLimited
	case http.StatusGone:
		// Bitbucket retires endpoints with a 410 naming the change.
		return msgRemoved
	}
	return http.StatusText(status)
}

type apiError struct {
	Type  string    `json:"type"`
	Error errDetail `json:"error"`
}

type errDetail struct {
	Message string              `json:"message"`
	Fields  map[string][]string `json:"fields,omitempty"` // per-field validation messages
	Detail  any                 `json:"detail,omitempty"`
}

func errorBody(msg string, detail any) apiError {
	return apiError{Type: "error", Error: errDetail{Message: msg, Detail: detail}}
}

// reply is an API answer computed under the lock and written after it.
type reply struct {
	status   int
	body     any    // nil for no body
	location string // Location header of a 201
}

func ok(v any) reply { return reply{status: http.StatusOK, body: v} }

func fail(status int, msg string) reply { return reply{status: status, body: errorBody(msg, nil)} }

// apiCall is one authenticated API request being served.
type apiCall struct {
	e      *Emulator
	r      *http.Request
	s      site
	p      map[string]string // path parameters, unescaped
	body   []byte
	user   *user
	scopes []string
}

type op struct {
	scope string // required OAuth scope
	serve func(*apiCall) reply
}

type route struct {
	pattern []string // literal segments, or "{name}" parameters
	ops     map[string]op
}

// removedRoutes answer 410 since Bitbucket's CHANGE-2770 (April 2026).
var removedRoutes = [][]string{
	{"repositories"},
	{"workspaces"},
	{"user", "permissions", "workspaces"},
}

func get(scope string, f func(*apiCall) reply) map[string]op {
	return map[string]op{http.MethodGet: {scope, f}}
}

// routes is the API surface the emulator serves.
var routes = []route{
	{pattern("user"), get("account", apiUser)},
	{pattern("user/emails"), get("email", apiUserEmails)},
	{pattern("user/workspaces"), get("account", apiUserWorkspaces)},
	{pattern("user/workspaces/{workspace}/permission"), get("account", apiUserWorkspacePermission)},
	{pattern("users/{user}"), get("account", apiUsers)},
	{pattern("workspaces/{workspace}"), get("account", apiWorkspace)},
	{pattern("repositories/{workspace}"), get("repository", apiRepositories)},
	{pattern("repositories/{workspace}/{repo}"), get("repository", apiRepository)},
	{pattern("repositories/{workspace}/{repo}/refs/branches"), get("repository", apiListBranches)},
	{pattern("repositories/{workspace}/{repo}/deploy-keys"), map[string]op{
		http.MethodGet:  {"repository:admin", apiListKeys},
		http.MethodPost: {"repository:admin", apiAddKey},
	}},
	{pattern("repositories/{workspace}/{repo}/deploy-keys/{key}"), map[string]op{
		http.MethodGet:    {"repository:admin", apiGetKey},
		http.MethodPut:    {"repository:admin", apiUpdateKey},
		http.MethodDelete: {"repository:admin", apiDeleteKey},
	}},
	{pattern("repositories/{workspace}/{repo}/hooks"), map[string]op{
		http.MethodGet:  {"webhook", apiListHooks},
		http.MethodPost: {"webhook", apiAddHook},
	}},
	{pattern("repositories/{workspace}/{repo}/hooks/{hook}"), map[string]op{
		http.MethodGet:    {"webhook", apiGetHook},
		http.MethodPut:    {"webhook", apiUpdateHook},
		http.MethodDelete: {"webhook", apiDeleteHook},
	}},
}

func pattern(p string) []string { return strings.Split(p, "/") }

func matchRoute(segs []string) (*route, map[string]string) {
	for i := range routes {
		rt := &routes[i]
		if len(rt.pattern) != len(segs) {
			continue
		}
		params := map[string]string{}
		matched := true
		for j, p := range rt.pattern {
			if strings.HasPrefix(p, "{") {
				params[strings.Trim(p, "{}")] = segs[j]
			} else if p != segs[j] {
				matched = false
				break
			}
		}
		if matched {
			return rt, params
		}
	}
	return nil, nil
}

// apiSegments splits the path after /2.0 into unescaped segments. It works on
// the escaped path so that an escaped "/" inside a segment stays inside it.
func apiSegments(r *http.Request) []string {
	p := strings.TrimPrefix(r.URL.EscapedPath(), "/2.0")
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if u, err := url.PathUnescape(s); err == nil {
			segs[i] = u
		}
	}
	return segs
}

// maxBody bounds request bodies; Bitbucket's API objects are small.
const maxBody = 1 << 20

func (e *Emulator) serveAPI(w http.ResponseWriter, r *http.Request, s site) {
	if !e.meterCall(w, r, strings.TrimPrefix(r.URL.Path, "/2.0")) {
		return
	}
	// The body is read first: a request carried out after its client gave
	// up (Failure.Commit) has it all the same.
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = io.ReadAll(io.LimitReader(r.Body, maxBody)); err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody("Could not read the request body", nil))
			return
		}
	}
	committed, serve := e.injectFailure(w, r, strings.TrimPrefix(r.URL.Path, "/2.0"))
	if !serve {
		return
	}
	segs := apiSegments(r)
	for _, rm := range removedRoutes {
		if slices.Equal(segs, rm) {
			writeJSON(w, http.StatusGone, errorBody(msgRemoved, nil))
			return
		}
	}
	rt, params := matchRoute(segs)
	if rt == nil {
		writeJSON(w, http.StatusNotFound, errorBody(msgNoResource, msgNoAPI))
		return
	}
	o, found := rt.ops[r.Method]
	if !found {
		var allow []string
		for m := range rt.ops {
			allow = append(allow, m)
		}
		slices.Sort(allow)
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeJSON(w, http.StatusMethodNotAllowed, errorBody("Method not allowed", nil))
		return
	}
	rep := e.call(w, r, s, o, params, body)
	if committed != nil && committed.Status != 0 {
		writeFailure(w, "", committed)
		return
	}
	if rep.location != "" {
		w.Header().Set("Location", rep.location)
	}
	if rep.body == nil {
		w.WriteHeader(rep.status)
		return
	}
	writeJSON(w, rep.status, rep.body)
}

// call authenticates the request and runs the endpoint under the lock.
func (e *Emulator) call(w http.ResponseWriter, r *http.Request, s site, o op, params map[string]string, body []byte) reply {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, msg := e.bearer(r)
	if t == nil {
		return fail(http.StatusUnauthorized, msg)
	}
	c := &apiCall{e: e, r: r, s: s, p: params, body: body, user: e.userByName(t.g.username), scopes: t.g.scopes}
	if c.user == nil {
		return fail(http.StatusUnauthorized, msgBadToken)
	}
	w.Header().Set("X-OAuth-Scopes", strings.Join(c.scopes, ", "))
	w.Header().Set("X-Accepted-OAuth-Scopes", o.scope)
	if !hasScope(c.scopes, o.scope) {
		return reply{status: http.StatusForbidden, body: errorBody(msgScopes, map[string][]string{
			"granted":  append([]string{}, c.scopes...),
			"required": {o.scope},
		})}
	}
	if id, ok := params["workspace"]; ok {
		if w := e.workspaceByID(id); w != nil && w.refusal.status != 0 {
			return w.refusal
		}
	}
	return o.serve(c)
}

// RefuseWorkspace makes every API call on the workspace slug (its
// repositories and everything in them) answer status with message, as a
// workspace whose access controls refuse the client, or whose shard is
// down, does; the workspace still appears in GET /user/workspaces. Status
// 0 serves it again.
func (e *Emulator) RefuseWorkspace(slug string, status int, message string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	w := e.workspaceBySlug(slug)
	if w == nil {
		return fmt.Errorf("no workspace %s", slug)
	}
	if status == 0 {
		w.refusal = reply{}
		return nil
	}
	w.refusal = fail(status, cmp.Or(message, failureMessage(status)))
	return nil
}

// bearer finds the live access token of the request, or says why not.
func (e *Emulator) bearer(r *http.Request) (*token, string) {
	raw := r.URL.Query().Get("access_token")
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, rest, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return nil, msgBadToken
		}
		raw = strings.TrimSpace(rest)
	}
	t := e.access[raw]
	if t == nil {
		return nil, msgBadToken
	}
	if time.Now().After(t.expires) {
		return nil, msgExpired
	}
	return t, ""
}

// impliedScopes lists what a scope grants besides itself. Bitbucket's
// write/admin scopes include the read scope below them.
var impliedScopes = map[string][]string{
	"account:write":     {"account"},
	"repository:write":  {"repository"},
	"repository:admin":  {"repository"},
	"pullrequest":       {"repository"},
	"pullrequest:write": {"pullrequest", "repository:write"},
	"issue:write":       {"issue"},
	"snippet:write":     {"snippet"},
	"team:write":        {"team"},
	"project:admin":     {"project"},
	"pipeline:write":    {"pipeline"},
	"runner:write":      {"runner"},
}

func hasScope(granted []string, need string) bool {
	seen := map[string]bool{}
	var walk func(s string)
	walk = func(s string) {
		if seen[s] {
			return
		}
		seen[s] = true
		for _, i := range impliedScopes[s] {
			walk(i)
		}
	}
	for _, g := range granted {
		walk(g)
	}
	return seen[need]
}

// Pagination as Bitbucket does it for page-numbered collections.
const (
	defaultPagelen = 10
	maxPagelen     = 100
)

type pageBody struct {
	Pagelen  int    `json:"pagelen"`
	Size     int    `json:"size"`
	Page     int    `json:"page"`
	Values   []any  `json:"values"`
	Next     string `json:"next,omitempty"`
	Previous string `json:"previous,omitempty"`
}

func (c *apiCall) page(values []any) reply {
	q := c.r.URL.Query()
	pagelen := defaultPagelen
	if v := q.Get("pagelen"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fail(http.StatusBadRequest, "Invalid pagelen")
		}
		if n > 0 {
			pagelen = min(n, maxPagelen)
		}
	}
	pg := 1
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fail(http.StatusBadRequest, "Invalid page")
		}
		pg = n
	}
	start := (pg - 1) * pagelen
	if pg > 1 && start >= len(values) {
		return fail(http.StatusBadRequest, "Invalid page")
	}
	end := min(start+pagelen, len(values))
	b := pageBody{Pagelen: pagelen, Size: len(values), Page: pg, Values: values[start:end]}
	if b.Values == nil {
		b.Values = []any{}
	}
	if end < len(values) {
		b.Next = c.pageURL(pg + 1)
	}
	if pg > 1 {
		b.Previous = c.pageURL(pg - 1)
	}
	return ok(b)
}

// pageURL is the absolute URL of another page of the current collection,
// keeping the client's other query parameters. Its path is the canonical
// lower-case one, whatever case the client wrote the workspace and slug
// in, as Bitbucket's next links are (every collection path Tether lists
// — workspaces, repositories, branches, keys, hooks, e-mails — names
// nothing case-sensitive).
func (c *apiCall) pageURL(n int) string {
	q := c.r.URL.Query()
	q.Del("access_token") // never echo a credential into a link
	q.Set("page", strconv.Itoa(n))
	return c.s.base + strings.ToLower(c.r.URL.EscapedPath()) + "?" + q.Encode()
}
