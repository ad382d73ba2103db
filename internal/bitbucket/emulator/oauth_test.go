package emulator

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestSignInConsentExchangeAndUser(t *testing.T) {
	v := newEnv(t)
	b := v.browser()
	page, csrf := v.consent(b, "alice")
	for _, want := range []string{"Tether CI", "Read your account information", "Administer your repositories", `id="grant-access"`, `id="cancel"`} {
		if !strings.Contains(page, want) {
			t.Errorf("consent page lacks %q", want)
		}
	}
	cb := v.decide(b, csrf, "grant")
	code := cb.Query().Get("code")
	if cb.Query().Get("state") != "st-123" || code == "" {
		t.Fatalf("callback %s", cb)
	}

	status, tok := v.tokenRequest(url.Values{"grant_type": {"authorization_code"}, "code": {code}})
	if status != http.StatusOK {
		t.Fatalf("exchange: %d %+v", status, tok)
	}
	if tok.TokenType != "bearer" || tok.ExpiresIn != 7200 || tok.State != "authorization_code" ||
		tok.Scopes != "account email repository:admin webhook pullrequest" || tok.RefreshToken == "" {
		t.Errorf("token response %+v", tok)
	}
	// Codes are single use.
	if status, again := v.tokenRequest(url.Values{"grant_type": {"authorization_code"}, "code": {code}}); status != http.StatusBadRequest || again.Error != "invalid_grant" {
		t.Errorf("reused code: %d %+v", status, again)
	}

	resp, body := v.get(tok.AccessToken, "/user")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/user: %d %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("X-OAuth-Scopes"); got != "account, email, repository:admin, webhook, pullrequest" {
		t.Errorf("X-OAuth-Scopes = %q", got)
	}
	var u struct {
		Username    string `json:"username"`
		DisplayName string `json:"display_name"`
		UUID        string `json:"uuid"`
		AccountID   string `json:"account_id"`
		Type        string `json:"type"`
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(body), &u); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatal(err)
	}
	if u.Username != "alice" || u.DisplayName != "Alice Liddell" || u.Type != "user" ||
		!strings.HasPrefix(u.UUID, "{") || !strings.HasPrefix(u.AccountID, "557058:") {
		t.Errorf("user %+v", u)
	}
	sameShape(t, "user", recorded(t, "api_user.json"), raw)
	links := raw["links"].(map[string]any)
	if self := links["self"].(map[string]any)["href"].(string); !strings.HasPrefix(self, v.srv.URL+"/2.0/") {
		t.Errorf("self link %s is not under the emulator", self)
	}

	var emails struct {
		Values []struct {
			Type        string `json:"type"`
			Email       string `json:"email"`
			IsPrimary   bool   `json:"is_primary"`
			IsConfirmed bool   `json:"is_confirmed"`
		} `json:"values"`
	}
	v.getJSON(tok.AccessToken, "/user/emails", http.StatusOK, &emails)
	if len(emails.Values) != 1 || emails.Values[0].Email != "alice@example.com" || !emails.Values[0].IsPrimary ||
		!emails.Values[0].IsConfirmed || emails.Values[0].Type != "email" {
		t.Errorf("emails %+v", emails)
	}
}

func TestDenyRedirectsWithAccessDenied(t *testing.T) {
	v := newEnv(t)
	b := v.browser()
	_, csrf := v.consent(b, "bob")
	cb := v.decide(b, csrf, "deny")
	q := cb.Query()
	if q.Get("error") != "access_denied" || q.Get("error_description") != "The user denied access" || q.Get("state") != "st-123" || q.Has("code") {
		t.Errorf("deny callback %s", cb)
	}
	if !strings.Contains(cb.RawQuery, "error_description=The+user+denied+access") {
		t.Errorf("deny callback query %s", cb.RawQuery)
	}
}

func TestAuthorizeErrors(t *testing.T) {
	v := newEnv(t)
	resp, err := http.Get(v.srv.URL + "/site/oauth2/authorize?client_id=nope&response_type=code")
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Invalid client_id") {
		t.Errorf("unknown client: %d %s", resp.StatusCode, body)
	}
	resp, err = http.Get(v.srv.URL + "/site/oauth2/authorize?client_id=" + testKey + "&response_type=code&redirect_uri=" + url.QueryEscape("http://evil.example/cb"))
	if err != nil {
		t.Fatal(err)
	}
	if readBody(t, resp); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("foreign redirect_uri answered %d", resp.StatusCode)
	}
	// A wrong password shows the form again.
	resp, err = http.PostForm(v.srv.URL+"/account/signin/", url.Values{"username": {"alice"}, "password": {"nope"}})
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); !strings.Contains(body, "Incorrect username or password") {
		t.Errorf("bad password page: %s", body)
	}
	// A consent POST without the page's csrf token is refused.
	b := v.browser()
	v.consent(b, "alice")
	resp, err = b.PostForm(v.srv.URL+"/site/oauth2/authorize", url.Values{"client_id": {testKey}, "response_type": {"code"}, "decision": {"grant"}})
	if err != nil {
		t.Fatal(err)
	}
	if readBody(t, resp); resp.StatusCode != http.StatusForbidden {
		t.Errorf("consent without csrf answered %d", resp.StatusCode)
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	v := newEnv(t)
	code := v.code("alice")
	req, _ := http.NewRequest(http.MethodPost, v.srv.URL+"/site/oauth2/access_token",
		strings.NewReader(url.Values{"grant_type": {"authorization_code"}, "code": {code}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(testKey, "wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var oe oauthError
	_ = json.Unmarshal([]byte(readBody(t, resp)), &oe)
	// Bitbucket answers a wrong secret 400 unauthorized_client, not RFC
	// 6749's 401 invalid_client (drone#1650).
	if resp.StatusCode != http.StatusBadRequest || oe != badClient {
		t.Errorf("bad secret: %d %+v", resp.StatusCode, oe)
	}
	if status, tok := v.tokenRequest(url.Values{"grant_type": {"password"}}); status != http.StatusBadRequest || tok.Error != "unsupported_grant_type" {
		t.Errorf("password grant: %d %+v", status, tok)
	}
	// Client credentials in the form work too.
	resp, err = http.PostForm(v.srv.URL+"/site/oauth2/access_token", url.Values{"grant_type": {"authorization_code"},
		"code": {code}, "client_id": {testKey}, "client_secret": {testSecret}})
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK {
		t.Errorf("form credentials: %d %s", resp.StatusCode, body)
	}
}

func TestRefreshRotates(t *testing.T) {
	v := newEnv(t)
	first := v.login("alice")
	status, second := v.refresh(first.RefreshToken)
	if status != http.StatusOK || second.State != "refresh_token" || second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
		t.Fatalf("refresh: %d %+v", status, second)
	}
	if n := v.e.TokenRefreshes("alice"); n != 1 {
		t.Errorf("TokenRefreshes = %d, want 1", n)
	}
	if status, again := v.refresh(first.RefreshToken); status != http.StatusBadRequest || again.Error != "invalid_grant" {
		t.Errorf("rotated refresh token: %d %+v", status, again)
	}
	v.wantError(first.AccessToken, "/user", http.StatusUnauthorized, msgBadToken)
	v.getJSON(second.AccessToken, "/user", http.StatusOK, nil)
	if n := v.e.TokenRefreshes("alice"); n != 1 {
		t.Errorf("a failed refresh counted: %d", n)
	}
}

func TestRevokeKillsTokensAndRefresh(t *testing.T) {
	v := newEnv(t)
	tok := v.login("alice")
	v.e.RevokeAuthorization("alice", testKey)
	if status, r := v.refresh(tok.RefreshToken); status != http.StatusBadRequest || r.Error != "invalid_grant" {
		t.Errorf("refresh after revoke: %d %+v", status, r)
	}
	v.wantError(tok.AccessToken, "/user", http.StatusUnauthorized, msgBadToken)
}

func TestRevokeFromAppAuthorizationsPage(t *testing.T) {
	v := newEnv(t)
	b := v.browser()
	_, csrf := v.consent(b, "alice")
	code := v.decide(b, csrf, "grant").Query().Get("code")
	status, tok := v.tokenRequest(url.Values{"grant_type": {"authorization_code"}, "code": {code}})
	if status != http.StatusOK {
		t.Fatal(status)
	}
	resp, err := b.Get(v.srv.URL + "/account/settings/app-authorizations/")
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	if !strings.Contains(body, "Application authorizations") || !strings.Contains(body, "Tether CI") || !strings.Contains(body, ">Revoke<") {
		t.Fatalf("app authorizations page: %s", body)
	}
	resp, err = b.PostForm(v.srv.URL+"/account/settings/app-authorizations/revoke", url.Values{"csrf": {csrf}, "consumer": {testKey}})
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); !strings.Contains(body, `id="no-authorizations"`) {
		t.Errorf("after revoke: %s", body)
	}
	v.wantError(tok.AccessToken, "/user", http.StatusUnauthorized, msgBadToken)

	// Signed out, the page asks to sign in.
	resp, err = b.Get(v.srv.URL + "/account/signout/")
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	resp, err = b.Get(v.srv.URL + "/account/settings/app-authorizations/")
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); !strings.Contains(body, `id="signin-form"`) {
		t.Errorf("signed out app authorizations: %s", body)
	}
}

func TestDropScope(t *testing.T) {
	v := newEnv(t)
	tok := v.login("alice")
	v.e.DropScope("alice", testKey, "email")
	e := v.wantError(tok.AccessToken, "/user/emails", http.StatusForbidden, msgScopes)
	var detail struct{ Granted, Required []string }
	if err := json.Unmarshal(e.Error.Detail, &detail); err != nil {
		t.Fatal(err)
	}
	if strings.Join(detail.Required, ",") != "email" || strings.Join(detail.Granted, ",") != "account,repository:admin,webhook,pullrequest" {
		t.Errorf("detail %+v", detail)
	}
	resp := v.getJSON(tok.AccessToken, "/user", http.StatusOK, nil)
	if got := resp.Header.Get("X-OAuth-Scopes"); strings.Contains(got, "email") {
		t.Errorf("X-OAuth-Scopes still has email: %q", got)
	}
	// repository:admin implies reading repositories; without it there is
	// nothing that does.
	v.getJSON(tok.AccessToken, "/repositories/acme/api", http.StatusOK, nil)
	v.e.DropScope("alice", testKey, "repository:admin")
	v.e.DropScope("alice", testKey, "pullrequest")
	v.wantError(tok.AccessToken, "/repositories/acme/api", http.StatusForbidden, msgScopes)
}

func TestExpireTokensThenRefresh(t *testing.T) {
	v := newEnv(t)
	tok := v.login("bob")
	v.e.ExpireTokens("bob")
	v.wantError(tok.AccessToken, "/user", http.StatusUnauthorized, msgExpired)
	status, fresh := v.refresh(tok.RefreshToken)
	if status != http.StatusOK {
		t.Fatalf("refresh after expiry: %d %+v", status, fresh)
	}
	v.getJSON(fresh.AccessToken, "/user", http.StatusOK, nil)
}

func TestMissingAndUnknownTokens(t *testing.T) {
	v := newEnv(t)
	v.wantError("", "/user", http.StatusUnauthorized, msgBadToken)
	v.wantError("garbage", "/user", http.StatusUnauthorized, msgBadToken)
}
