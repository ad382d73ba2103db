package bitbucket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tokenServer is a token endpoint that rotates refresh tokens the way
// Bitbucket does: each refresh token works once.
type tokenServer struct {
	t        *testing.T
	mu       sync.Mutex
	n        int
	valid    map[string]bool // refresh tokens not yet used
	requests atomic.Int32
	delay    time.Duration
}

func (s *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	time.Sleep(s.delay)
	if r.Method != http.MethodPost || r.URL.Path != "/site/oauth2/access_token" {
		s.t.Errorf("unexpected %s %s", r.Method, r.URL)
		http.NotFound(w, r)
		return
	}
	if id, secret, ok := r.BasicAuth(); !ok || id != "client-id" || secret != "client-SECRET-5678" {
		writeJSON(w, 401, `{"error":"invalid_client","error_description":"Invalid OAuth client credentials"}`)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		s.t.Errorf("Content-Type = %q", ct)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.PostFormValue("grant_type") {
	case "authorization_code":
		if r.PostFormValue("code") != "good-code" {
			writeJSON(w, 400, `{"error":"invalid_grant","error_description":"The code `+r.PostFormValue("code")+` is invalid"}`)
			return
		}
	case "refresh_token":
		rt := r.PostFormValue("refresh_token")
		if !s.valid[rt] {
			// Echoes the token, as a careless server might.
			writeJSON(w, 400, `{"error":"invalid_grant","error_description":"Invalid refresh_token `+rt+`"}`)
			return
		}
		delete(s.valid, rt)
	default:
		writeJSON(w, 400, `{"error":"unsupported_grant_type"}`)
		return
	}
	s.n++
	rt := fmt.Sprintf("refresh-SECRET-%d", s.n)
	s.valid[rt] = true
	writeJSON(w, 200, fmt.Sprintf(`{"access_token":"access-%d","scopes":"account repository:admin webhook email","expires_in":7200,"refresh_token":%q,"token_type":"bearer","state":"authorization_code"}`, s.n, rt))
}

func newTokenServer(t *testing.T) (*Client, *tokenServer) {
	ts := &tokenServer{t: t, valid: map[string]bool{}}
	c, _ := newTestClient(t, ts)
	return c, ts
}

func TestExchange(t *testing.T) {
	c, _ := newTokenServer(t)
	before := time.Now()
	tok, err := c.Exchange(context.Background(), "good-code")
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken != "access-1" || tok.RefreshToken != "refresh-SECRET-1" {
		t.Errorf("token = %+v", tok)
	}
	if want := []string{"account", "repository:admin", "webhook", "email"}; !reflect.DeepEqual(tok.Scopes, want) {
		t.Errorf("scopes = %q, want %q", tok.Scopes, want)
	}
	if d := tok.Expiry.Sub(before); d < 2*time.Hour-time.Minute || d > 2*time.Hour+time.Minute {
		t.Errorf("expiry in %v, want about 2h", d)
	}

	_, err = c.Exchange(context.Background(), "code-SECRET-used")
	if !errors.Is(err, ErrGrantRefused) {
		t.Errorf("used code: err = %v, want ErrGrantRefused", err)
	}
	assertNoSecrets(t, err, "code-SECRET-used")
}

func TestRefreshRotates(t *testing.T) {
	c, _ := newTokenServer(t)
	ctx := context.Background()
	first, err := c.Exchange(ctx, "good-code")
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.Refresh(ctx, first.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if second.AccessToken != "access-2" || second.RefreshToken != "refresh-SECRET-2" {
		t.Errorf("refreshed = %+v", second)
	}
	if _, err := c.Refresh(ctx, second.RefreshToken); err != nil {
		t.Fatal(err)
	}

	// The rotated-away token is now rejected: the grant is gone.
	_, err = c.Refresh(ctx, first.RefreshToken)
	if !errors.Is(err, ErrGrantRefused) {
		t.Fatalf("old refresh token: err = %v, want ErrGrantRefused", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Status != 400 || IsTransient(err) {
		t.Errorf("err = %#v", err)
	}
	assertNoSecrets(t, err, first.RefreshToken)
	if want := "bitbucket: POST /site/oauth2/access_token: 400 invalid_grant: Invalid refresh_token [redacted]"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
}

func TestConcurrentRefreshesShareOneRequest(t *testing.T) {
	c, ts := newTokenServer(t)
	ts.valid["refresh-SECRET-0"] = true
	ts.delay = 200 * time.Millisecond
	var wg sync.WaitGroup
	toks := make([]Token, 5)
	errs := make([]error, 5)
	for i := range toks {
		wg.Go(func() { toks[i], errs[i] = c.Refresh(context.Background(), "refresh-SECRET-0") })
	}
	wg.Wait()
	for i := range toks {
		if errs[i] != nil || !reflect.DeepEqual(toks[i], toks[0]) {
			t.Errorf("refresh %d = %+v, %v", i, toks[i], errs[i])
		}
	}
	if n := ts.requests.Load(); n != 1 {
		t.Errorf("%d token requests, want 1", n)
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	// Wrong client credentials: a plain *Error, not a revoked grant.
	c, _ := newTokenServer(t)
	c.clientSecret = "wrong-SECRET"
	_, err := c.Refresh(context.Background(), "refresh-SECRET-x")
	var e *Error
	if !errors.As(err, &e) || e.Status != 401 || e.Message != "invalid_client: Invalid OAuth client credentials" || errors.Is(err, ErrGrantRefused) {
		t.Errorf("bad client: err = %#v", err)
	}
	assertNoSecrets(t, err, "wrong-SECRET", "refresh-SECRET-x")

	// Server trouble is transient, and token requests are never retried.
	for _, status := range []int{500, 503, 429} {
		var calls atomic.Int32
		c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			w.WriteHeader(status)
		}))
		_, err := c.Refresh(context.Background(), "refresh-SECRET-x")
		if !IsTransient(err) || errors.Is(err, ErrGrantRefused) || calls.Load() != 1 {
			t.Errorf("%d: err = %v after %d calls", status, err, calls.Load())
		}
	}

	// Unreachable.
	c = New(Config{WebURL: "http://127.0.0.1:1", ClientSecret: "client-SECRET-5678"})
	_, err = c.Exchange(context.Background(), "code-SECRET")
	if !IsTransient(err) {
		t.Errorf("unreachable: err = %v, not transient", err)
	}
	assertNoSecrets(t, err, "code-SECRET")
}

// Every 4xx from the token endpoint except 429 is a verdict: a refused
// grant, or Tether's own client credentials refused; only 5xx, 429 and no
// answer are "could not ask". Bodies as Bitbucket sends them in the field.
func TestTokenEndpointVerdicts(t *testing.T) {
	const (
		grant  = "grant"
		client = "client"
		trans  = "transient"
	)
	cases := []struct {
		status  int
		body    string
		verdict string
		words   string
	}{
		{400, `{"error_description": "Invalid refresh_token", "error": "invalid_grant"}`, grant, "invalid_grant: Invalid refresh_token"},
		{400, `{"error_description": "Invalid refresh_token", "error": "invalid_request"}`, grant, "invalid_request: Invalid refresh_token"},
		{400, `{"error": "unauthorized_client", "error_description": "The client is not authorized to use this grant type"}`, grant, "unauthorized_client"},
		{400, `{"error": "invalid_scope"}`, grant, "invalid_scope"},
		{403, `{"error": "access_denied"}`, grant, "access_denied"},
		{404, `Not Found`, grant, ""},
		{400, `{"error_description": "Invalid OAuth client credentials", "error": "unauthorized_client"}`, client, "unauthorized_client: Invalid OAuth client credentials"},
		{400, `{"error_description": "Requests must be authenticated using OAuth client credentials", "error": "unauthorized_client"}`, client, "client credentials"},
		{401, `{"error": "invalid_client", "error_description": "Invalid OAuth client credentials"}`, client, "invalid_client"},
		{400, `{"error": "invalid_client"}`, client, "invalid_client"},
		{429, `{"error": "rate_limited"}`, trans, ""},
		{500, `{"error": "server_error"}`, trans, ""},
		{503, ``, trans, ""},
	}
	for _, tc := range cases {
		c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "90")
			w.WriteHeader(tc.status)
			io.WriteString(w, tc.body)
		}))
		_, err := c.Refresh(context.Background(), "refresh-SECRET-x")
		var e *Error
		got := trans
		switch {
		case errors.Is(err, ErrGrantRefused):
			got = grant
		case errors.Is(err, ErrInvalidClient):
			got = client
		}
		if got != tc.verdict || (got == trans) != IsTransient(err) || !errors.As(err, &e) || !strings.Contains(e.Message, tc.words) {
			t.Errorf("%d %s: %v (verdict %s, want %s)", tc.status, tc.body, err, got, tc.verdict)
		}
		if tc.status == 429 && e.RetryAfter != 90*time.Second {
			t.Errorf("429: Retry-After %v", e.RetryAfter)
		}
		assertNoSecrets(t, err, "refresh-SECRET-x")
	}
}
