package emulator

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const (
	testKey      = "tether-key"
	testSecret   = "tether-secret"
	testCallback = "http://127.0.0.1:1/oauth/callback"
)

var testScopes = []string{"account", "email", "repository:admin", "webhook", "pullrequest"}

// env is an emulator served on 127.0.0.1 plus a browser-like client.
type env struct {
	t   *testing.T
	e   *Emulator
	srv *httptest.Server
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := New(Config{
		Demo:         true,
		RetryBackoff: 10 * time.Millisecond,
		Consumers: []Consumer{{Key: testKey, Secret: testSecret, Name: "Tether CI",
			CallbackURL: testCallback, Scopes: testScopes}},
	})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return &env{t: t, e: e, srv: srv}
}

// browser is a client with its own cookie jar that stops at the OAuth
// callback instead of following it.
func (v *env) browser() *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		v.t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), testCallback) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func authorizeURL(base, state string) string {
	return base + "/site/oauth2/authorize?" + url.Values{"client_id": {testKey}, "response_type": {"code"}, "state": {state}}.Encode()
}

// consent signs username in through the authorize URL and returns the
// consent page and its csrf token.
func (v *env) consent(b *http.Client, username string) (string, string) {
	t := v.t
	t.Helper()
	resp, err := b.Get(authorizeURL(v.srv.URL, "st-123"))
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	if !strings.Contains(body, `id="signin-form"`) {
		t.Fatalf("expected the sign-in form, got %d %s", resp.StatusCode, body)
	}
	next := regexp.MustCompile(`name="next" value="([^"]+)"`).FindStringSubmatch(body)
	if next == nil {
		t.Fatal("sign-in form has no next field")
	}
	resp, err = b.PostForm(v.srv.URL+"/account/signin/", url.Values{
		"username": {username}, "password": {"demo"}, "next": {htmlUnescape(next[1])}})
	if err != nil {
		t.Fatal(err)
	}
	body = readBody(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="consent-form"`) {
		t.Fatalf("expected the consent page, got %d %s", resp.StatusCode, body)
	}
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("consent page has no csrf field")
	}
	return body, m[1]
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">").Replace(s)
}

// decide answers the consent page and returns the callback URL reached.
func (v *env) decide(b *http.Client, csrf, decision string) *url.URL {
	t := v.t
	t.Helper()
	resp, err := b.PostForm(v.srv.URL+"/site/oauth2/authorize", url.Values{
		"client_id": {testKey}, "response_type": {"code"}, "state": {"st-123"},
		"csrf": {csrf}, "decision": {decision}})
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("decision answered %d, want 302", resp.StatusCode)
	}
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// code runs the whole browser flow for username and returns the code.
func (v *env) code(username string) string {
	v.t.Helper()
	b := v.browser()
	_, csrf := v.consent(b, username)
	u := v.decide(b, csrf, "grant")
	if u.Query().Get("state") != "st-123" || u.Query().Get("code") == "" {
		v.t.Fatalf("callback %s lacks code or state", u)
	}
	return u.Query().Get("code")
}

type tokenJSON struct {
	AccessToken  string `json:"access_token"`
	Scopes       string `json:"scopes"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	State        string `json:"state"`
	Error        string `json:"error"`
	Description  string `json:"error_description"`
}

func (v *env) tokenRequest(form url.Values) (int, tokenJSON) {
	t := v.t
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, v.srv.URL+"/site/oauth2/access_token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(testKey, testSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok tokenJSON
	if err := json.Unmarshal([]byte(readBody(t, resp)), &tok); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, tok
}

// login runs the flow and the code exchange for username.
func (v *env) login(username string) tokenJSON {
	v.t.Helper()
	status, tok := v.tokenRequest(url.Values{"grant_type": {"authorization_code"}, "code": {v.code(username)}})
	if status != http.StatusOK {
		v.t.Fatalf("code exchange answered %d %+v", status, tok)
	}
	return tok
}

func (v *env) refresh(rt string) (int, tokenJSON) {
	return v.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
}

// api calls the REST API with the access token; path is after /2.0 or an
// absolute URL (a next link).
func (v *env) api(method, token, path string, body io.Reader) (*http.Response, string) {
	t := v.t
	t.Helper()
	u := path
	if !strings.HasPrefix(path, "http") {
		u = v.srv.URL + "/2.0" + path
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp, readBody(t, resp)
}

func (v *env) get(token, path string) (*http.Response, string) {
	v.t.Helper()
	return v.api(http.MethodGet, token, path, nil)
}

// getJSON fetches path and decodes the answer, failing unless it is want.
func (v *env) getJSON(token, path string, want int, into any) *http.Response {
	v.t.Helper()
	resp, body := v.get(token, path)
	if resp.StatusCode != want {
		v.t.Fatalf("GET %s answered %d, want %d: %s", path, resp.StatusCode, want, body)
	}
	if into != nil {
		if err := json.Unmarshal([]byte(body), into); err != nil {
			v.t.Fatalf("GET %s: %v in %s", path, err, body)
		}
	}
	return resp
}

type errorJSON struct {
	Type  string `json:"type"`
	Error struct {
		Message string          `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	} `json:"error"`
}

// wantError checks an API error answer's status and message.
func (v *env) wantError(token, path string, status int, message string) errorJSON {
	v.t.Helper()
	var e errorJSON
	v.getJSON(token, path, status, &e)
	if e.Type != "error" || e.Error.Message != message {
		v.t.Fatalf("GET %s: error %+v, want message %q", path, e, message)
	}
	return e
}

type repoPage struct {
	Pagelen int               `json:"pagelen"`
	Size    int               `json:"size"`
	Page    int               `json:"page"`
	Next    string            `json:"next"`
	Values  []json.RawMessage `json:"values"`
}

type repoJSONT struct {
	UUID      string `json:"uuid"`
	Name      string `json:"name"`
	Slug      string `json:"slug"`
	FullName  string `json:"full_name"`
	IsPrivate bool   `json:"is_private"`
	Workspace struct {
		Slug, UUID, Name string
	} `json:"workspace"`
	Links struct {
		Clone []struct{ Name, Href string } `json:"clone"`
		HTML  struct{ Href string }         `json:"html"`
	} `json:"links"`
	Mainbranch struct{ Name string } `json:"mainbranch"`
}

// allRepos follows next links from path and returns every repository.
func (v *env) allRepos(token, path string) []repoJSONT {
	v.t.Helper()
	var out []repoJSONT
	for next := path; next != ""; {
		var p repoPage
		v.getJSON(token, next, http.StatusOK, &p)
		for _, raw := range p.Values {
			var r repoJSONT
			if err := json.Unmarshal(raw, &r); err != nil {
				v.t.Fatal(err)
			}
			out = append(out, r)
		}
		if len(out) > p.Size {
			v.t.Fatalf("more values than size %d", p.Size)
		}
		next = p.Next
	}
	return out
}

func recorded(t *testing.T, name string) any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "recorded", name))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// sameShape checks that ours has every field of the recorded value, with
// the same JSON type (recorded nulls match anything).
func sameShape(t *testing.T, where string, rec, ours any) {
	t.Helper()
	switch r := rec.(type) {
	case nil:
	case map[string]any:
		o, ok := ours.(map[string]any)
		if !ok {
			t.Errorf("%s: recorded an object, emulator gives %T", where, ours)
			return
		}
		for k, rv := range r {
			ov, ok := o[k]
			if !ok {
				t.Errorf("%s.%s: missing", where, k)
				continue
			}
			sameShape(t, where+"."+k, rv, ov)
		}
	case []any:
		o, ok := ours.([]any)
		if !ok {
			t.Errorf("%s: recorded an array, emulator gives %T", where, ours)
			return
		}
		if len(r) > 0 && len(o) > 0 {
			sameShape(t, where+"[0]", r[0], o[0])
		}
	default:
		if ours == nil || jsonKind(rec) != jsonKind(ours) {
			t.Errorf("%s: recorded %T, emulator gives %T", where, rec, ours)
		}
	}
}

func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	}
	return "other"
}
