package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// sessionCookie is the emulator's own sign-in cookie. It has its own name and
// path so it never collides with the cookies of the app embedding it.
const sessionCookie = "bb_emulator_session"

const codeTTL = 10 * time.Minute

type session struct {
	username string
	csrf     string // guards the signed-in forms (consent, revoke)
}

// grant is a user's authorization of a consumer. Tokens point at it, so
// dropping a scope narrows every live token at once and revoking it kills
// them all.
type grant struct {
	username string
	consumer string
	scopes   []string
	created  time.Time
}

type authCode struct {
	g           *grant
	redirectURI string // as sent to the authorize endpoint, "" if none
	expires     time.Time
}

type token struct {
	access, refresh string
	g               *grant
	expires         time.Time
}

// scopeWords are the descriptions Bitbucket's consent page shows for scopes.
var scopeWords = map[string]string{
	"account":           "Read your account information",
	"account:write":     "Read and modify your account information",
	"email":             "Read your primary email address",
	"team":              "Read your workspace membership information",
	"team:write":        "Read and modify your workspace membership information",
	"project":           "Read your workspaces' project settings and read repositories contained within your workspaces' projects",
	"project:admin":     "Read and modify settings for projects in your workspace",
	"repository":        "Read your repositories",
	"repository:write":  "Read and modify your repositories",
	"repository:admin":  "Administer your repositories",
	"repository:delete": "Delete your repositories",
	"pullrequest":       "Read your repositories and their pull requests",
	"pullrequest:write": "Read and modify your repositories and their pull requests",
	"webhook":           "Read and modify your repositories' webhooks",
	"issue":             "Read your repositories' issues",
	"issue:write":       "Read and modify your repositories' issues",
	"wiki":              "Read and modify your repositories' wikis",
	"snippet":           "Read your snippets",
	"snippet:write":     "Read and modify your snippets",
	"pipeline":          "Read your pipelines",
	"pipeline:write":    "Read and modify your pipelines",
	"pipeline:variable": "Read and modify your pipeline variables",
	"runner":            "Read your runners",
	"runner:write":      "Read and modify your runners",
}

func scopeWord(s string) string {
	if w, ok := scopeWords[s]; ok {
		return w
	}
	return s
}

func (e *Emulator) consumer(key string) *Consumer {
	for _, c := range e.consumers {
		if c.Key == key {
			return c
		}
	}
	return nil
}

func (e *Emulator) grantFor(username, consumer string) *grant {
	for _, g := range e.grants {
		if g.username == username && g.consumer == consumer {
			return g
		}
	}
	return nil
}

// session returns the browser's emulator session, nil when signed out.
func (e *Emulator) session(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sessions[c.Value]
}

// authParams are the parameters of an authorization request, carried from
// the authorize URL through sign-in and the consent form.
type authParams struct {
	ClientID, ResponseType, State, RedirectURI string
}

func (p authParams) query() string {
	v := url.Values{"client_id": {p.ClientID}, "response_type": {p.ResponseType}}
	if p.State != "" {
		v.Set("state", p.State)
	}
	if p.RedirectURI != "" {
		v.Set("redirect_uri", p.RedirectURI)
	}
	return v.Encode()
}

func (e *Emulator) handleAuthorize(w http.ResponseWriter, r *http.Request, s site) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		e.renderError(w, s, http.StatusMethodNotAllowed, "Method not allowed", "")
		return
	}
	_ = r.ParseForm() // a malformed body leaves the fields empty, which is reported below
	p := authParams{
		ClientID:     r.Form.Get("client_id"),
		ResponseType: r.Form.Get("response_type"),
		State:        r.Form.Get("state"),
		RedirectURI:  r.Form.Get("redirect_uri"),
	}
	e.mu.Lock()
	c := e.consumer(p.ClientID)
	var cc Consumer
	if c != nil {
		cc = *c
	}
	e.mu.Unlock()
	if c == nil {
		e.renderError(w, s, http.StatusBadRequest, "Invalid client_id", "No OAuth consumer with key "+p.ClientID+" is registered.")
		return
	}
	target := p.RedirectURI
	if target == "" {
		target = cc.CallbackURL
	}
	if target == "" || (cc.CallbackURL != "" && !strings.HasPrefix(target, cc.CallbackURL)) {
		e.renderError(w, s, http.StatusBadRequest, "Invalid redirect_uri",
			"The redirect_uri does not match the callback URL registered on the OAuth consumer "+cc.Name+".")
		return
	}
	if p.ResponseType != "code" {
		redirectWith(w, r, target, url.Values{"error": {"unsupported_response_type"},
			"error_description": {"Only the authorization code flow is supported"}}, p.State)
		return
	}
	sess := e.session(r)
	if sess == nil {
		next := "/site/oauth2/authorize?" + p.query()
		http.Redirect(w, r, s.path+"/account/signin/?next="+url.QueryEscape(next), http.StatusFound)
		return
	}
	if r.Method == http.MethodGet {
		e.render(w, http.StatusOK, "consent", page{
			Title: "Authorize " + cc.Name, Base: s.path, User: sess.username, CSRF: sess.csrf,
			Data: consentData{Consumer: cc.Name, Scopes: describeScopes(cc.Scopes), Params: p},
		})
		return
	}
	if r.PostForm.Get("csrf") != sess.csrf {
		e.renderError(w, s, http.StatusForbidden, "Request expired", "Reload the page and try again.")
		return
	}
	switch r.PostForm.Get("decision") {
	case "grant":
		code := e.grantAccess(sess.username, &cc, p.RedirectURI)
		redirectWith(w, r, target, url.Values{"code": {code}}, p.State)
	case "deny":
		redirectWith(w, r, target, url.Values{"error": {"access_denied"},
			"error_description": {"The user denied access"}}, p.State)
	default:
		e.renderError(w, s, http.StatusBadRequest, "Invalid decision", "Choose Grant access or Cancel.")
	}
}

type consentData struct {
	Consumer string
	Scopes   []scopeLine
	Params   authParams
}

type scopeLine struct{ Scope, Words string }

func describeScopes(scopes []string) []scopeLine {
	var out []scopeLine
	for _, s := range scopes {
		out = append(out, scopeLine{s, scopeWord(s)})
	}
	return out
}

// grantAccess records (or renews, with the consumer's current scopes) the
// user's grant and returns a fresh authorization code for it.
func (e *Emulator) grantAccess(username string, c *Consumer, redirectURI string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	g := e.grantFor(username, c.Key)
	if g == nil {
		g = &grant{username: username, consumer: c.Key, created: time.Now()}
		e.grants = append(e.grants, g)
	}
	g.scopes = append([]string(nil), c.Scopes...)
	if r, ok := e.refreshRefusals[username]; ok && r.Status == http.StatusBadRequest {
		delete(e.refreshRefusals, username) // a new grant, a new refresh token
	}
	code := randomToken(12)
	e.codes[code] = &authCode{g: g, redirectURI: redirectURI, expires: time.Now().Add(codeTTL)}
	return code
}

// redirectWith sends the browser back to the client's redirect URI with the
// given parameters and the state, untouched.
func redirectWith(w http.ResponseWriter, r *http.Request, target string, v url.Values, state string) {
	if state != "" {
		v.Set("state", state)
	}
	sep := "?"
	if strings.Contains(target, "?") {
		sep = "&"
	}
	http.Redirect(w, r, target+sep+v.Encode(), http.StatusFound)
}

type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	Scopes       string `json:"scopes"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	State        string `json:"state"`
}

func (e *Emulator) handleAccessToken(w http.ResponseWriter, r *http.Request) {
	if _, serve := e.injectFailure(w, r, tokenPath); !serve {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeJSON(w, http.StatusMethodNotAllowed, oauthError{"invalid_request", "The token endpoint only accepts POST"})
		return
	}
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, oauthError{"invalid_request", "Malformed request body"})
		return
	}
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	status, body, retryAfter := e.exchange(id, secret, r.PostForm)
	if status == http.StatusUnauthorized && basic {
		w.Header().Set("WWW-Authenticate", `Basic realm="Bitbucket.org HTTP"`)
	}
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	}
	writeJSON(w, status, body)
}

// Bitbucket's answers to client credentials it does not accept: 400
// unauthorized_client, not RFC 6749's 401 invalid_client (drone#1650,
// p2/OAuth2#96).
var (
	badClient = oauthError{"unauthorized_client", "Invalid OAuth client credentials"}
	noClient  = oauthError{"unauthorized_client", "Requests must be authenticated using OAuth client credentials"}
)

// RefreshRefusal is how the token endpoint answers a user's refresh_token
// grants (RefuseRefresh): an OAuth error with its status, or a 429.
type RefreshRefusal struct {
	Status      int    // 400, 401 or 429
	Error       string // e.g. "invalid_request"
	Description string // e.g. "Invalid refresh_token"
	RetryAfter  int    // seconds, for a 429
}

// RefreshRefusals are the token endpoint's refusals of a refresh seen in
// the field or defined by RFC 6749 §5.2, by name, for RefuseRefresh and
// the control page.
var RefreshRefusals = map[string]RefreshRefusal{
	// The grant was revoked or the token used twice (Bitbucket's usual).
	"invalid_grant": {Status: http.StatusBadRequest, Error: "invalid_grant", Description: "Invalid refresh_token"},
	// Seen in the field (readthedocs/readthedocs.org#2992).
	"invalid_request": {Status: http.StatusBadRequest, Error: "invalid_request", Description: "Invalid refresh_token"},
	// RFC 6749 §5.2: the client may not use this grant type.
	"unauthorized_client": {Status: http.StatusBadRequest, Error: "unauthorized_client", Description: "The authenticated client is not authorized to use this authorization grant type."},
	// RFC 6749 §5.2: the scope asked for exceeds the grant.
	"invalid_scope": {Status: http.StatusBadRequest, Error: "invalid_scope", Description: "The requested scope is invalid, unknown, or exceeds the scope granted by the resource owner."},
	// RFC 6749 §5.2's answer to failed client authentication with Basic.
	"invalid_client": {Status: http.StatusUnauthorized, Error: "invalid_client", Description: "Invalid OAuth client credentials"},
	// Rate limited, with when to try again.
	"rate_limited": {Status: http.StatusTooManyRequests, Error: "rate_limited", Description: "Rate limit for this resource has been exceeded", RetryAfter: 120},
}

// RefuseRefresh makes the token endpoint answer every refresh_token grant
// of username's tokens with the named refusal (a key of RefreshRefusals);
// "" stops it. A refused grant (invalid_grant, invalid_request,
// unauthorized_client, invalid_scope) stays refused until the user grants
// access again, as a dead refresh token does on Bitbucket.
func (e *Emulator) RefuseRefresh(username, name string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if name == "" {
		delete(e.refreshRefusals, username)
		return nil
	}
	r, ok := RefreshRefusals[name]
	if !ok {
		return fmt.Errorf("unknown refusal %q", name)
	}
	e.refreshRefusals[username] = r
	return nil
}

// SetConsumerSecret changes an OAuth consumer's secret, as its owner can
// on Bitbucket: a client still using the old one is refused at the token
// endpoint from then on.
func (e *Emulator) SetConsumerSecret(key, secret string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.consumer(key)
	if c == nil {
		return fmt.Errorf("no consumer %s", key)
	}
	c.Secret = secret
	return nil
}

const tokenPath = "/site/oauth2/access_token"

// exchange answers a token request: status, body and, for a 429, the
// Retry-After seconds.
func (e *Emulator) exchange(clientID, secret string, form url.Values) (int, any, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if clientID == "" {
		return http.StatusBadRequest, noClient, 0
	}
	c := e.consumer(clientID)
	if c == nil || c.Secret != secret {
		return http.StatusBadRequest, badClient, 0
	}
	var g *grant
	state := form.Get("grant_type")
	switch state {
	case "authorization_code":
		code, ok := e.codes[form.Get("code")]
		if !ok || code.g.consumer != c.Key {
			return http.StatusBadRequest, oauthError{"invalid_grant", "The specified code is not valid."}, 0
		}
		delete(e.codes, form.Get("code"))
		if time.Now().After(code.expires) {
			return http.StatusBadRequest, oauthError{"invalid_grant", "The specified code is expired."}, 0
		}
		if ru := form.Get("redirect_uri"); ru != "" && code.redirectURI != "" && ru != code.redirectURI {
			return http.StatusBadRequest, oauthError{"invalid_grant", "The redirect_uri does not match the one used to obtain the code."}, 0
		}
		if !slices.Contains(e.grants, code.g) {
			return http.StatusBadRequest, oauthError{"invalid_grant", "The authorization was revoked."}, 0
		}
		g = code.g
	case "refresh_token":
		e.refreshRequests++
		old, ok := e.refresh[form.Get("refresh_token")]
		if !ok || old.g.consumer != c.Key {
			return http.StatusBadRequest, oauthError{"invalid_grant", "Invalid refresh_token"}, 0
		}
		if r, refused := e.refreshRefusals[old.g.username]; refused {
			return r.Status, oauthError{r.Error, r.Description}, r.RetryAfter
		}
		// Refresh tokens rotate: the old pair dies with the exchange.
		delete(e.refresh, old.refresh)
		delete(e.access, old.access)
		g = old.g
		e.refreshes[g.username]++
	case "":
		return http.StatusBadRequest, oauthError{"invalid_request", "Missing grant_type parameter"}, 0
	default:
		return http.StatusBadRequest, oauthError{"unsupported_grant_type", "Unsupported grant type: " + state}, 0
	}
	t := &token{access: randomToken(32), refresh: randomToken(12), g: g, expires: time.Now().Add(e.cfg.AccessTokenTTL)}
	e.access[t.access] = t
	e.refresh[t.refresh] = t
	return http.StatusOK, tokenResponse{
		AccessToken:  t.access,
		Scopes:       strings.Join(g.scopes, " "),
		ExpiresIn:    int(e.cfg.AccessTokenTTL / time.Second),
		RefreshToken: t.refresh,
		TokenType:    "bearer",
		State:        state,
	}, 0
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client hanging up is not ours to report
}

// safeNext keeps the post-sign-in redirect inside the emulator.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/account/settings/app-authorizations/"
	}
	return next
}

type signinData struct {
	Next, Username, Error string
	Demo                  bool
}

func (e *Emulator) handleSignin(w http.ResponseWriter, r *http.Request, s site) {
	switch r.Method {
	case http.MethodGet:
		e.render(w, http.StatusOK, "signin", page{Title: "Log in to Bitbucket", Base: s.path,
			Data: signinData{Next: safeNext(r.URL.Query().Get("next")), Demo: e.cfg.Demo}})
	case http.MethodPost:
		_ = r.ParseForm() // empty fields fail the password check below
		name, pass, next := r.PostForm.Get("username"), r.PostForm.Get("password"), safeNext(r.PostForm.Get("next"))
		e.mu.Lock()
		u := e.userByName(name)
		ok := u != nil && u.Password != "" && u.Password == pass
		var id string
		if ok {
			// A fresh session id on every sign-in, so a planted cookie never
			// becomes someone's session.
			if c, err := r.Cookie(sessionCookie); err == nil {
				delete(e.sessions, c.Value)
			}
			id = randomToken(16)
			e.sessions[id] = &session{username: name, csrf: randomToken(16)}
		}
		e.mu.Unlock()
		if !ok {
			e.render(w, http.StatusUnauthorized, "signin", page{Title: "Log in to Bitbucket", Base: s.path,
				Data: signinData{Next: next, Username: name, Error: "Incorrect username or password.", Demo: e.cfg.Demo}})
			return
		}
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: s.cookiePath(), HttpOnly: true, SameSite: http.SameSiteLaxMode})
		http.Redirect(w, r, s.path+next, http.StatusSeeOther)
	default:
		w.Header().Set("Allow", "GET, POST")
		e.renderError(w, s, http.StatusMethodNotAllowed, "Method not allowed", "")
	}
}

func (e *Emulator) handleSignout(w http.ResponseWriter, r *http.Request, s site) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		e.mu.Lock()
		delete(e.sessions, c.Value)
		e.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: s.cookiePath(), MaxAge: -1, HttpOnly: true})
	http.Redirect(w, r, s.path+"/", http.StatusSeeOther)
}

type appAuthRow struct {
	ConsumerKey, ConsumerName string
	Scopes                    []scopeLine
	Granted                   string
}

// handleAppAuthorizations serves the user's "Application authorizations"
// page, where Bitbucket lets people revoke apps; Tether links to it.
func (e *Emulator) handleAppAuthorizations(w http.ResponseWriter, r *http.Request, s site) {
	const pagePath = "/account/settings/app-authorizations/"
	sess := e.session(r)
	if sess == nil {
		http.Redirect(w, r, s.path+"/account/signin/?next="+url.QueryEscape(pagePath), http.StatusFound)
		return
	}
	action := strings.Trim(strings.TrimPrefix(r.URL.Path, "/account/settings/app-authorizations"), "/")
	if r.Method == http.MethodPost {
		_ = r.ParseForm() // missing fields make the actions below no-ops
		if r.PostForm.Get("csrf") != sess.csrf {
			e.renderError(w, s, http.StatusForbidden, "Request expired", "Reload the page and try again.")
			return
		}
		switch action {
		case "revoke":
			e.RevokeAuthorization(sess.username, r.PostForm.Get("consumer"))
		case "drop-scope":
			e.DropScope(sess.username, r.PostForm.Get("consumer"), r.PostForm.Get("scope"))
		default:
			e.renderError(w, s, http.StatusNotFound, "Page not found", "")
			return
		}
		http.Redirect(w, r, s.path+pagePath, http.StatusSeeOther)
		return
	}
	if action != "" {
		e.renderError(w, s, http.StatusNotFound, "Page not found", "")
		return
	}
	e.mu.Lock()
	var rows []appAuthRow
	for _, g := range e.grants {
		if g.username != sess.username {
			continue
		}
		name := g.consumer
		if c := e.consumer(g.consumer); c != nil {
			name = c.Name
		}
		rows = append(rows, appAuthRow{ConsumerKey: g.consumer, ConsumerName: name,
			Scopes: describeScopes(g.scopes), Granted: g.created.UTC().Format("2 Jan 2006 15:04 MST")})
	}
	e.mu.Unlock()
	e.render(w, http.StatusOK, "appauth", page{Title: "Application authorizations", Base: s.path,
		User: sess.username, CSRF: sess.csrf, Data: rows})
}

// RevokeAuthorization is the user revoking the consumer on Bitbucket's
// application authorizations page: every token of that grant stops working
// and refreshing answers 400 invalid_grant.
func (e *Emulator) RevokeAuthorization(username, consumerKey string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	g := e.grantFor(username, consumerKey)
	if g == nil {
		return
	}
	e.grants = slices.DeleteFunc(e.grants, func(x *grant) bool { return x == g })
	for k, t := range e.access {
		if t.g == g {
			e.revokedTokens[k] = g.username
			delete(e.access, k)
		}
	}
	for k, t := range e.refresh {
		if t.g == g {
			delete(e.refresh, k)
		}
	}
	for k, c := range e.codes {
		if c.g == g {
			delete(e.codes, k)
		}
	}
}

// DropScope removes one scope from the user's grant of the consumer. Live
// tokens keep working, with fewer scopes.
func (e *Emulator) DropScope(username, consumerKey, scope string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if g := e.grantFor(username, consumerKey); g != nil {
		g.scopes = slices.DeleteFunc(g.scopes, func(s string) bool { return s == scope })
	}
}

// ExpireTokens makes every access token of the user expire now; their
// refresh tokens still work.
func (e *Emulator) ExpireTokens(username string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	past := time.Now().Add(-time.Second)
	for _, t := range e.access {
		if t.g.username == username {
			t.expires = past
		}
	}
}

// RefreshRequests counts every refresh_token grant the token endpoint
// received from a known consumer, answered or refused: a client that keeps
// sending a dead refresh token shows here.
func (e *Emulator) RefreshRequests() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.refreshRequests
}

// TokenRefreshes counts the successful refresh_token grants of the user.
func (e *Emulator) TokenRefreshes(username string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.refreshes[username]
}

// originalSecret is the secret consumer key was configured with.
func (e *Emulator) originalSecret(key string) string {
	for _, c := range e.cfg.Consumers {
		if c.Key == key {
			return c.Secret
		}
	}
	return ""
}
