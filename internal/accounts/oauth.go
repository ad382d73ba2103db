package accounts

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	gothbb "github.com/markbates/goth/providers/bitbucket"
	"golang.org/x/oauth2"

	"tether/internal/bitbucket"
	"tether/internal/problem"
	"tether/internal/tether"
)

// The hosts goth's Bitbucket provider has as constants. Tether keeps goth for
// the OAuth dance and maps these onto the configured URLs, so the same code
// talks to bitbucket.org, to the built-in emulator, or to any server that
// speaks the Bitbucket contract.
const (
	gothWebURL = "https://bitbucket.org"
	gothAPIURL = "https://api.bitbucket.org/2.0"
)

// OAuthConfig is what the OAuth dance needs.
type OAuthConfig struct {
	ClientID, ClientSecret string
	CallbackURL            string // TETHER_PUBLIC_URL + /auth/bitbucket/callback
	WebURL, APIURL         string // BITBUCKET_URL, BITBUCKET_API_URL
	Transport              http.RoundTripper
	// Credentials, when set, hears whether the token endpoint accepted
	// Tether's client credentials at each sign-in, so admins learn of a
	// wrong consumer key or secret (connections.Service).
	Credentials Credentials
}

// Credentials hears what the token endpoint made of Tether's OAuth client
// credentials.
type Credentials interface {
	ClientRefused(reason string)
	ClientAccepted()
}

// OAuth runs "Log in with Bitbucket" and "Grant access" through goth.
type OAuth struct {
	provider    *gothbb.Provider
	client      *bitbucket.Client
	webURL      string
	credentials Credentials
}

// NewOAuth returns the Bitbucket OAuth flow. client reads the granted scopes.
func NewOAuth(cfg OAuthConfig, client *bitbucket.Client) *OAuth {
	p := gothbb.New(cfg.ClientID, cfg.ClientSecret, cfg.CallbackURL)
	p.HTTPClient = &http.Client{
		Timeout: 15 * time.Second,
		Transport: &hostMap{base: cfg.Transport, rules: [][2]string{
			// Longest prefix first: the API base is more specific.
			{gothAPIURL, strings.TrimRight(cfg.APIURL, "/")},
			{gothWebURL, strings.TrimRight(cfg.WebURL, "/")},
		}},
	}
	return &OAuth{provider: p, client: client, webURL: strings.TrimRight(cfg.WebURL, "/"), credentials: cfg.Credentials}
}

// AuthURL is where the browser goes to consent; state is echoed back.
func (o *OAuth) AuthURL(state string) (string, error) {
	sess, err := o.provider.BeginAuth(state)
	if err != nil {
		return "", err
	}
	u, err := sess.GetAuthURL()
	if err != nil {
		return "", err
	}
	return o.webURL + strings.TrimPrefix(u, gothWebURL), nil
}

// Complete exchanges the code from the callback and reads the profile.
func (o *OAuth) Complete(ctx context.Context, code string) (Profile, tether.Token, error) {
	sess := &gothbb.Session{}
	if _, err := sess.Authorize(o.provider, url.Values{"code": {code}}); err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 && re.Response.StatusCode != http.StatusTooManyRequests {
			if o.badClient(re) {
				return Profile{}, tether.Token{}, problem.Wrap(problem.Unavailable, errors.New(re.ErrorCode),
					"Bitbucket refuses Tether's OAuth consumer key or secret (%s), so nobody can sign in with Bitbucket until an administrator corrects BITBUCKET_CLIENT_ID and BITBUCKET_CLIENT_SECRET.", oauthWords(re))
			}
			return Profile{}, tether.Token{}, problem.Wrap(problem.Invalid, errors.New(re.ErrorCode),
				"Bitbucket did not accept the sign-in (%s). Please try again.", oauthWords(re))
		}
		return Profile{}, tether.Token{}, problem.Wrap(problem.Unavailable, redactErr(err), "Could not reach Bitbucket to finish signing in. Please try again.")
	}
	if o.credentials != nil {
		o.credentials.ClientAccepted()
	}
	// goth does not expose the token response's scopes; Bitbucket reports
	// them on every API answer, so read them from /user — first, through
	// Tether's client, whose errors say what Bitbucket answered (a 429 and
	// its Retry-After), before goth's own reads of the profile.
	// The account may not exist yet, so this call spends no connection's
	// budget (it is still counted in the metrics).
	_, scopes, err := o.client.CurrentUser(bitbucket.Unbudgeted(ctx), sess.AccessToken)
	if err != nil {
		return Profile{}, tether.Token{}, profileProblem(err)
	}
	gu, err := o.provider.FetchUser(sess)
	if err != nil && gu.UserID == "" {
		return Profile{}, tether.Token{}, profileProblem(redactErr(err))
	}
	// The profile was read but the e-mail was not (no confirmed primary
	// address, or the grant lacks the email scope): sign in without one.
	p := Profile{UUID: gu.UserID, Username: gu.NickName, DisplayName: gu.Name, Email: gu.Email}
	if p.UUID == "" {
		return Profile{}, tether.Token{}, problem.New(problem.Unavailable, "Bitbucket did not say who you are. Please try again.")
	}
	return p, tether.Token{AccessToken: gu.AccessToken, RefreshToken: gu.RefreshToken, ExpiresAt: gu.ExpiresAt, Scopes: scopes}, nil
}

// profileProblem says why the profile could not be read: Bitbucket rate
// limiting the person's account (until when, from its Retry-After), or
// no usable answer.
func profileProblem(err error) error {
	var be *bitbucket.Error
	if _, limited := bitbucket.RateLimited(err); limited && errors.As(err, &be) {
		after := "in a few minutes"
		if be.RetryAfter > 0 {
			after = "after " + bitbucket.WaitEnd(time.Now().Add(be.RetryAfter))
		}
		return problem.Wrap(problem.Unavailable, err, "Bitbucket is rate limiting your account (too many API calls in the last hour), so Tether could not read your profile. Please try again %s.", after)
	}
	return problem.Wrap(problem.Unavailable, err, "Could not read your Bitbucket profile. Please try again.")
}

// oauthWords is the token endpoint's error code and description, or its
// status when it gave none.
func oauthWords(re *oauth2.RetrieveError) string {
	switch {
	case re.ErrorCode != "" && re.ErrorDescription != "":
		return re.ErrorCode + ": " + re.ErrorDescription
	case re.ErrorCode != "":
		return re.ErrorCode
	}
	return fmt.Sprintf("status %d", re.Response.StatusCode)
}

// badClient reports a token endpoint answer that refuses Tether's client
// credentials (as bitbucket.ErrInvalidClient does for refreshes), and
// tells Credentials.
func (o *OAuth) badClient(re *oauth2.RetrieveError) bool {
	bad := re.ErrorCode == "invalid_client" || re.Response.StatusCode == http.StatusUnauthorized ||
		re.ErrorCode == "unauthorized_client" && strings.Contains(strings.ToLower(re.ErrorDescription), "client credentials")
	if bad && o.credentials != nil {
		o.credentials.ClientRefused(oauthWords(re))
	}
	return bad
}

// redactErr drops URLs from transport errors: they can carry codes.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// hostMap sends requests for goth's fixed Bitbucket URLs to the configured
// ones, keeping the rest of the path and the query.
type hostMap struct {
	base  http.RoundTripper
	rules [][2]string
}

func (h *hostMap) RoundTrip(req *http.Request) (*http.Response, error) {
	base := h.base
	if base == nil {
		base = http.DefaultTransport
	}
	u := req.URL.String()
	for _, r := range h.rules {
		if rest, ok := strings.CutPrefix(u, r[0]); ok && (rest == "" || rest[0] == '/' || rest[0] == '?') {
			to, err := url.Parse(r[1] + rest)
			if err != nil {
				return nil, err
			}
			req = req.Clone(req.Context())
			req.URL, req.Host = to, ""
			break
		}
	}
	return base.RoundTrip(req)
}
