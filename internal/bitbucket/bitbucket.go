// Package bitbucket is Tether's client for Bitbucket Cloud: the OAuth2 token
// endpoint, the handful of REST API calls Tether needs (user, workspaces,
// repositories, deploy keys, webhooks), the parser and signature check for
// webhook deliveries, and an SSH probe that tells whether a deploy key can
// still read its repository.
//
// Every URL comes from Config, never from a hard-coded host, because Tether
// runs against Bitbucket Cloud, its own emulator and independent
// implementations of the same contract. Retries live here and only here, so
// callers never multiply them; errors are classified (IsTransient,
// IsUnauthorized, ...) so callers can tell "Bitbucket said no" from "we could
// not reach Bitbucket", and no error string ever carries a token or secret.
package bitbucket

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"
	"golang.org/x/sync/singleflight"
)

// Config says where Bitbucket lives and who Tether is to it.
type Config struct {
	WebURL       string // e.g. https://bitbucket.org (OAuth endpoints live here)
	APIURL       string // e.g. https://api.bitbucket.org/2.0
	ClientID     string
	ClientSecret string
	// HTTPClient is optional; the default has a 15s timeout. Whatever
	// its redirect policy, only GETs follow redirects (see MovedError).
	HTTPClient *http.Client
	// Budget paces every REST API call by the connection named in its
	// context (WithConnection). With a Budget, a call whose context names
	// none fails with ErrNoConnection, so no caller can bypass it. nil
	// paces nothing.
	Budget *Budget
	// Observe, when set, is told about every request sent to Bitbucket,
	// for the metrics.
	Observe func(Call)
	// Clock times the pauses between retries; nil means the real clock.
	Clock clockwork.Clock
}

// Call is one request Tether sent to Bitbucket, as the metrics see it.
type Call struct {
	// Endpoint is the route template, never a path with names or ids:
	// e.g. "GET /repositories/{workspace}/{repo_slug}/hooks/{uid}" or
	// "POST /site/oauth2/access_token".
	Endpoint string
	Status   int  // HTTP status; 0 when no answer came
	Token    bool // the OAuth token endpoint, outside the API budget
}

// Client talks to one Bitbucket. It is safe for concurrent use.
type Client struct {
	webURL, apiURL string
	clientID       string
	clientSecret   string
	http           *http.Client
	budget         *Budget
	observe        func(Call)
	clock          clockwork.Clock

	// refreshes collapses concurrent refreshes of the same refresh token:
	// Bitbucket rotates refresh tokens, so a second, parallel refresh with
	// the old token would be answered invalid_grant and make a healthy
	// connection look revoked.
	refreshes singleflight.Group
}

// New returns a Client for cfg.
func New(cfg Config) *Client {
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	clock := cfg.Clock
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	return &Client{
		webURL:       strings.TrimRight(cfg.WebURL, "/"),
		apiURL:       strings.TrimRight(cfg.APIURL, "/"),
		clientID:     cfg.ClientID,
		clientSecret: cfg.ClientSecret,
		http:         writesStayPut(hc),
		budget:       cfg.Budget,
		observe:      cfg.Observe,
		clock:        clock,
	}
}

const (
	// maxBody bounds what is read from any response: the largest legitimate
	// answer (a page of 100 repositories) is far below it.
	maxBody = 4 << 20
	// maxPages stops pagination against a server whose "next" never ends.
	maxPages = 100
	// maxRetries is how often an idempotent GET is repeated after a 5xx or
	// a connection failure.
	maxRetries = 2
	// maxRetryAfter is the longest Retry-After a GET waits out by itself;
	// longer waits are the caller's decision (background checks back off).
	maxRetryAfter = 3 * time.Second
)

// retryBackoff is the pause before retry n (0-based).
var retryBackoff = [maxRetries]time.Duration{200 * time.Millisecond, 600 * time.Millisecond}

// request is one HTTP exchange with Bitbucket.
type request struct {
	route   string // the endpoint's template, e.g. "GET /user", for metrics
	method  string
	url     string // absolute
	path    string // as shown in error messages
	token   string // Bearer token; empty for the OAuth endpoint
	body    []byte
	ctype   string   // content type of body
	basic   bool     // authenticate with the client id and secret
	secrets []string // redacted from error messages besides the token
}

// response is what came back, body already read (and capped).
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends r, retrying idempotent GETs, and returns the response if it is a
// 2xx. Any other status becomes an *Error built by fail.
func (c *Client) do(ctx context.Context, r request, fail func(request, response) error) (response, error) {
	for attempt := 0; ; attempt++ {
		if err := c.admit(ctx, r); err != nil {
			return response{}, err
		}
		resp, err := c.roundTrip(ctx, r)
		c.account(ctx, r, resp)
		if err == nil && resp.status >= 200 && resp.status < 300 {
			return resp, nil
		}
		switch {
		case err == nil && resp.status >= 300 && resp.status < 400:
			err = c.moved(r, resp)
		case err == nil:
			err = fail(r, resp)
			c.notePause(ctx, err)
		}
		wait, ok := retryWait(ctx, r.method, attempt, err)
		if !ok {
			return resp, err
		}
		t := c.clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return resp, err
		case <-t.Chan():
		}
	}
}

// admit asks the budget before an API request: it is where every call
// with a person's token is counted and paced, whoever makes it. Token
// endpoint requests (basic auth) are not the API's budget.
func (c *Client) admit(ctx context.Context, r request) error {
	if c.budget == nil || r.basic {
		return nil
	}
	conn, ok := ConnectionOf(ctx)
	if !ok {
		if unbudgeted, _ := ctx.Value(unbudgetedKey{}).(bool); unbudgeted {
			return nil
		}
		return fmt.Errorf("%w: %s", ErrNoConnection, r.route)
	}
	return c.budget.wait(ctx, conn, PriorityOf(ctx), r.token)
}

// account tells the budget and the metrics what one request got.
func (c *Client) account(ctx context.Context, r request, resp response) {
	if c.observe != nil {
		c.observe(Call{Endpoint: r.route, Status: resp.status, Token: r.basic})
	}
	conn, ok := ConnectionOf(ctx)
	if c.budget == nil {
		return
	}
	if !ok {
		if !r.basic {
			c.budget.Unattributed(r.token)
		}
		return
	}
	if r.basic {
		c.budget.TokenCall(conn)
		return
	}
	c.budget.Observe(conn, resp.status, resp.header)
}

// notePause gives a 429 the end of the pause the budget set from it
// (Error.PausedUntil), so what people read says the budget's own time.
func (c *Client) notePause(ctx context.Context, err error) {
	var e *Error
	if c.budget == nil || !errors.As(err, &e) || e.Status != http.StatusTooManyRequests {
		return
	}
	if conn, ok := ConnectionOf(ctx); ok {
		e.PausedUntil = c.budget.Usage(conn).PausedUntil
	}
}

// retryWait decides whether a failed attempt is worth repeating and after
// how long. Only GETs are retried: a POST that timed out may have created a
// key or hook already, and a token request must never be replayed (codes are
// single-use, refresh tokens rotate).
func retryWait(ctx context.Context, method string, attempt int, err error) (time.Duration, bool) {
	if method != http.MethodGet || attempt >= maxRetries || ctx.Err() != nil {
		return 0, false
	}
	var wait time.Duration
	var apiErr *Error
	var te *transientError
	switch {
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusTooManyRequests:
		if apiErr.RetryAfter <= 0 || apiErr.RetryAfter > maxRetryAfter {
			return 0, false
		}
		wait = apiErr.RetryAfter
	case errors.As(err, &apiErr) && apiErr.Status >= 500:
		wait = retryBackoff[attempt]
	case errors.As(err, &te) && !te.timeout():
		// A timeout already cost the full client timeout; repeating it
		// would only multiply the wait for a stalled server.
		wait = retryBackoff[attempt]
	default:
		return 0, false
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
		return 0, false
	}
	return wait, true
}

// roundTrip performs one attempt. Transport failures come back as
// *transientError; a 2xx or not is for the caller to judge.
func (c *Client) roundTrip(ctx context.Context, r request) (response, error) {
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, body)
	if err != nil {
		return response{}, fmt.Errorf("bitbucket: %s %s: %w", r.method, r.path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "Tether")
	if r.body != nil {
		req.Header.Set("Content-Type", r.ctype)
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	if r.basic {
		req.SetBasicAuth(c.clientID, c.clientSecret)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// *url.Error repeats the method and full URL that op already names.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return response{}, &transientError{op: r.method + " " + r.path, err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return response{}, &transientError{op: r.method + " " + r.path, err: err}
	}
	if len(data) > maxBody {
		return response{}, fmt.Errorf("bitbucket: %s %s: response larger than %d bytes", r.method, r.path, maxBody)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

// apiError turns a non-2xx API response into an *Error, keeping every
// shape of Bitbucket's error body (see Error): message, fields as an
// object or a list, detail as text or with the required scopes, or
// OAuth's {"error","error_description"}. A body that is not JSON (a
// proxy's or a load balancer's plain-text answer) gives its first line,
// unless it is an HTML page.
func apiError(r request, resp response) error {
	var body struct {
		Error *struct {
			Message string          `json:"message"`
			Fields  json.RawMessage `json:"fields"`
			Detail  json.RawMessage `json:"detail"`
		} `json:"error"`
	}
	var oauth struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	e := &Error{Status: resp.status, method: r.method, path: r.path}
	switch {
	case json.Unmarshal(resp.body, &oauth) == nil && oauth.Error != "":
		// OAuth's shape, which a 401 from the API's gateway may take.
		e.Message = r.redact(strings.TrimSuffix(oauth.Error+": "+oauth.Description, ": "))
	case json.Unmarshal(resp.body, &body) == nil && body.Error != nil:
		e.Message = r.redact(body.Error.Message)
		e.Fields = decodeFields(r, body.Error.Fields)
		var text string
		var scopes struct {
			Required []string `json:"required"`
		}
		if json.Unmarshal(body.Error.Detail, &text) == nil {
			e.Detail = r.redact(text)
		} else if json.Unmarshal(body.Error.Detail, &scopes) == nil {
			e.Required = scopes.Required
		}
	case !json.Valid(resp.body) && !looksLikeHTML(resp.body):
		e.Message = r.redact(firstLine(string(resp.body)))
	}
	if resp.status == http.StatusTooManyRequests {
		e.RetryAfter = parseRetryAfter(resp.header.Get("Retry-After"))
	}
	return e
}

// decodeFields reads error.fields: {"url": ["Enter a valid URL."]} (a
// reason or a list of them per field), or ["…", "…"] (reasons without a
// field). Anything else is ignored.
func decodeFields(r request, raw json.RawMessage) []FieldError {
	if len(raw) == 0 {
		return nil
	}
	var out []FieldError
	var byField map[string]json.RawMessage
	var list []string
	switch {
	case json.Unmarshal(raw, &byField) == nil:
		for field, v := range byField {
			var many []string
			var one string
			switch {
			case json.Unmarshal(v, &many) == nil:
			case json.Unmarshal(v, &one) == nil:
				many = []string{one}
			default:
				many = []string{string(v)}
			}
			for _, m := range many {
				out = append(out, FieldError{Field: r.redact(field), Message: r.redact(m)})
			}
		}
		slices.SortStableFunc(out, func(a, b FieldError) int { return strings.Compare(a.Field, b.Field) })
	case json.Unmarshal(raw, &list) == nil:
		for _, m := range list {
			out = append(out, FieldError{Message: r.redact(m)})
		}
	}
	return out
}

// looksLikeHTML reports an HTML page, whose text is no message for people.
func looksLikeHTML(b []byte) bool {
	t := strings.ToLower(strings.TrimSpace(string(b[:min(len(b), 64)])))
	return strings.HasPrefix(t, "<!doctype") || strings.HasPrefix(t, "<html") || strings.HasPrefix(t, "<")
}

// redact removes every credential r carries from s, so that a server
// echoing a token back cannot leak it into logs or pages. It also trims s to
// a length fit for one line of UI.
func (r request) redact(s string) string {
	for _, secret := range append([]string{r.token}, r.secrets...) {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return clip(strings.Join(strings.Fields(s), " "), 300)
}

// clip shortens s to at most n bytes, on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := 0
	for i := range s {
		if i > n {
			break
		}
		cut = i
	}
	return s[:cut] + "…"
}

// parseRetryAfter reads delay-seconds or an HTTP date.
func parseRetryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		// A day is longer than anything Tether waits for; capping keeps a
		// huge value from overflowing.
		return time.Duration(min(n, 86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// apiPath joins escaped path segments, e.g. apiPath("repositories", ws,
// slug) → "/repositories/acme/api". Each segment is path-escaped, so a
// "{uuid}" travels as %7Buuid%7D.
func apiPath(segments ...string) string {
	var b strings.Builder
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// call performs one API request for route (its template, e.g. "GET
// /user") at path, with a JSON body (if in is non-nil), and decodes a JSON
// answer into out (if non-nil). It returns the response headers, which
// some callers read.
func (c *Client) call(ctx context.Context, route, path string, query url.Values, token string, in, out any, secrets ...string) (http.Header, error) {
	method, _, _ := strings.Cut(route, " ")
	r := request{route: route, method: method, url: c.apiURL + path, path: path, token: token, secrets: secrets}
	if len(query) > 0 {
		r.url += "?" + query.Encode()
	}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("bitbucket: %s %s: %w", method, path, err)
		}
		r.body, r.ctype = b, "application/json"
	}
	resp, err := c.do(ctx, r, apiError)
	if err != nil {
		return nil, err
	}
	if out != nil {
		if err := json.Unmarshal(resp.body, out); err != nil {
			return nil, fmt.Errorf("bitbucket: %s %s: decoding response: %w", method, path, err)
		}
	}
	return resp.header, nil
}

// listAll GETs path and every following page, collecting the values.
// A "next" link is followed only while it stays under the configured API
// URL: the bearer token must never be sent to another host.
func listAll[T any](ctx context.Context, c *Client, route, token, path string, query url.Values) ([]T, error) {
	next := c.apiURL + path
	if len(query) > 0 {
		next += "?" + query.Encode()
	}
	var all []T
	for range maxPages {
		r := request{route: route, method: http.MethodGet, url: next, path: c.displayPath(next), token: token}
		resp, err := c.do(ctx, r, apiError)
		if err != nil {
			return nil, err
		}
		var page struct {
			Values []T    `json:"values"`
			Next   string `json:"next"`
		}
		if err := json.Unmarshal(resp.body, &page); err != nil {
			return nil, fmt.Errorf("bitbucket: GET %s: decoding response: %w", r.path, err)
		}
		all = append(all, page.Values...)
		if page.Next == "" {
			return all, nil
		}
		if next, err = c.resolveNext(next, page.Next); err != nil {
			return nil, fmt.Errorf("bitbucket: GET %s: %w", r.path, err)
		}
	}
	// Past maxPages the listing is returned as far as it got: a server
	// whose next never ends should not make the whole listing fail.
	return all, nil
}

// resolveNext resolves a "next" link against the page it came from and
// refuses it unless it points under the API URL.
func (c *Client) resolveNext(current, next string) (string, error) {
	base, err := url.Parse(current)
	if err != nil {
		return "", err
	}
	ref, err := url.Parse(next)
	if err != nil {
		return "", fmt.Errorf("malformed next page link: %w", err)
	}
	abs := base.ResolveReference(ref).String()
	if !strings.HasPrefix(abs, c.apiURL+"/") {
		return "", errors.New("next page link points outside the API URL; not followed")
	}
	return abs, nil
}

// displayPath is u relative to the API URL and without its query, for
// error messages.
func (c *Client) displayPath(u string) string {
	p := strings.TrimPrefix(u, c.apiURL)
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	return p
}
