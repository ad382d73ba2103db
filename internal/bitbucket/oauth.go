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

// ErrInvalidGrant is returned (wrapped in an *Error) when the token endpoint
// answers 400 invalid_grant: the authorization code or refresh token is
// unknown, used or revoked, so the user has to grant access again.
var ErrInvalidGrant = errors.New("invalid_grant")

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
// "error_description"}) into an *Error, marking invalid_grant.
func tokenError(r request, resp response) error {
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	e := &Error{Status: resp.status, method: r.method, path: r.path}
	if json.Unmarshal(resp.body, &body) == nil {
		e.Message = body.Error
		if body.Description != "" {
			e.Message += ": " + body.Description
		}
	}
	e.Message = r.redact(e.Message)
	switch {
	case resp.status == http.StatusTooManyRequests:
		e.RetryAfter = parseRetryAfter(resp.header.Get("Retry-After"))
	case resp.status == http.StatusBadRequest && body.Error == "invalid_grant":
		e.wrapped = ErrInvalidGrant
	}
	return e
}
