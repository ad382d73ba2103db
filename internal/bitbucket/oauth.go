package bitbucket

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The token endpoint's verdicts. Every 4xx from it except 429 is one of
// them: only a network failure, a 5xx or a 429 means "could not ask".
var (
	// ErrGrantRefused is returned (wrapped in an *Error, whose Message
	// carries Bitbucket's error code and description) when the token
	// endpoint refuses the grant itself: invalid_grant (the code or
	// refresh token is unknown, used or revoked), invalid_request
	// ("Invalid refresh_token", seen in the field: readthedocs#2992),
	// unauthorized_client for the grant, or any other 4xx. The refresh
	// token is dead: the person must grant access again, and it must not
	// be sent again.
	ErrGrantRefused = errors.New("the token endpoint refused the grant")
	// ErrInvalidClient is returned (wrapped in an *Error) when the token
	// endpoint refuses Tether itself: the OAuth consumer key or secret is
	// wrong (invalid_client, RFC 6749 §5.2; Bitbucket also answers 400
	// unauthorized_client "Invalid OAuth client credentials", drone#1650).
	// That is a configuration error for admins, not a person's revoked
	// grant: the person's refresh token was not even looked at.
	ErrInvalidClient = errors.New("the token endpoint refused Tether's OAuth client credentials")
)

// Token is an OAuth2 token pair as Bitbucket issued it.
type Token struct {
	AccessToken, RefreshToken string
	Expiry                    time.Time
	Scopes                    []string // from the token response's "scopes" (space separated)
}

const tokenPath = "/site/oauth2/access_token"

// Exchange trades an authorization code for a token.
func (c *Client) Exchange(ctx context.Context, code string) (Token, error) {
	return c.token(ctx, url.Values{"grant_type": {"authorization_code"}, "code": {code}}, code)
}

// Refresh trades a refresh token for a new token. Bitbucket rotates refresh
// tokens, so the caller must store the returned RefreshToken; concurrent
// calls with the same refresh token share one request.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (Token, error) {
	v, err, _ := c.refreshes.Do(refreshToken, func() (any, error) {
		tok, err := c.token(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}, refreshToken)
		if err == nil && tok.RefreshToken == "" {
			// RFC 6749 §6: no new refresh token means keep the old one.
			tok.RefreshToken = refreshToken
		}
		return tok, err
	})
	return v.(Token), err
}

// token posts form to the token endpoint. grant is the code or refresh
// token sent, kept out of error messages like the client secret.
func (c *Client) token(ctx context.Context, form url.Values, grant string) (Token, error) {
	r := request{
		route:   "POST " + tokenPath,
		method:  http.MethodPost,
		url:     c.webURL + tokenPath,
		path:    tokenPath,
		body:    []byte(form.Encode()),
		ctype:   "application/x-www-form-urlencoded",
		basic:   true,
		secrets: []string{grant, c.clientSecret},
	}
	resp, err := c.do(ctx, r, tokenError)
	if err != nil {
		return Token{}, err
	}
	var body struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		ExpiresIn    int64  `json:"expires_in"`
		Scopes       string `json:"scopes"`
	}
	if err := json.Unmarshal(resp.body, &body); err != nil {
		return Token{}, fmt.Errorf("bitbucket: POST %s: decoding response: %w", tokenPath, err)
	}
	if body.AccessToken == "" {
		return Token{}, fmt.Errorf("bitbucket: POST %s: response has no access_token", tokenPath)
	}
	tok := Token{AccessToken: body.AccessToken, RefreshToken: body.RefreshToken, Scopes: strings.Fields(body.Scopes)}
	if body.ExpiresIn > 0 {
		tok.Expiry = time.Now().Add(time.Duration(body.ExpiresIn) * time.Second)
	}
	return tok, nil
}

// tokenError turns a non-2xx token endpoint answer ({"error",
// "error_description"}) into an *Error wrapping its verdict: a 429 has
// its Retry-After, a 5xx is transient, invalid client credentials are
// ErrInvalidClient and every other 4xx is ErrGrantRefused.
func tokenError(r request, resp response) error {
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	e := &Error{Status: resp.status, method: r.method, path: r.path}
	switch {
	case json.Unmarshal(resp.body, &body) == nil:
		e.OAuthError = r.redact(body.Error)
		e.Message = body.Error
		if body.Description != "" {
			e.Message += ": " + body.Description
		}
	case !looksLikeHTML(resp.body):
		e.Message = firstLine(string(resp.body))
	}
	e.Message = r.redact(e.Message)
	switch {
	case resp.status == http.StatusTooManyRequests:
		e.RetryAfter = parseRetryAfter(resp.header.Get("Retry-After"))
	case resp.status >= 500:
	case badClient(resp.status, body.Error, body.Description):
		e.wrapped = ErrInvalidClient
	case resp.status >= 400:
		e.wrapped = ErrGrantRefused
	}
	return e
}

// badClient reports an answer that refuses the client credentials rather
// than the grant: invalid_client, a 401 (RFC 6749 §5.2 keeps 401 for
// failed client authentication), or Bitbucket's unauthorized_client whose
// description speaks of the client credentials ("Invalid OAuth client
// credentials", "Requests must be authenticated using OAuth client
// credentials"; drone#1650, p2/OAuth2#96).
func badClient(status int, code, description string) bool {
	return code == "invalid_client" || status == http.StatusUnauthorized ||
		code == "unauthorized_client" && strings.Contains(strings.ToLower(description), "client credentials")
}
