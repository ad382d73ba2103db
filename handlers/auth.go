package handlers

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"tether/internal/accounts"
	"tether/internal/problem"
	"tether/internal/tether"
	"tether/internal/throttle"
	"tether/views"
)

const (
	oauthCookie   = "tether_oauth"
	oauthPath     = "/auth/bitbucket"
	oauthStateTTL = 10 * time.Minute
)

// oauthState travels in a signed cookie from the start of the OAuth dance
// to its callback. State must match the query's; UserID is set when a
// signed-in person grants access (intent "connect").
type oauthState struct {
	State    string
	Intent   string
	UserID   int64
	ReturnTo string
}

// landing is where a signed-in person goes when nothing says otherwise.
const landing = "/projects"

func (h *Handlers) home(c echo.Context) error {
	if currentUser(c) != nil {
		return redirect(c, http.StatusOK, landing, landing)
	}
	return render(c, http.StatusOK, views.Home(h.page(c, "Welcome", ""), views.Form{}), nil)
}

func (h *Handlers) signupPage(c echo.Context) error {
	next := localTarget(c.QueryParam("next"), "")
	if currentUser(c) != nil {
		return redirect(c, http.StatusOK, next, landing)
	}
	f := views.Form{Values: map[string]string{"next": next}}
	return render(c, http.StatusOK, views.SignupPage(h.page(c, "Sign up", "signup"), f), nil)
}

func (h *Handlers) loginPage(c echo.Context) error {
	next := localTarget(c.QueryParam("next"), "")
	if currentUser(c) != nil {
		return redirect(c, http.StatusOK, next, landing)
	}
	f := views.Form{Values: map[string]string{"next": next}}
	if msg := c.QueryParam("error"); msg != "" {
		f.Error = loginMessages[msg]
	}
	return render(c, http.StatusOK, views.LoginPage(h.page(c, "Log in", "login"), f), nil)
}

// loginMessages are the only messages the login page shows from its query,
// so a crafted link cannot put words on Tether's page.
var loginMessages = map[string]string{
	"denied":  "You cancelled on Bitbucket, so you are not signed in. You can try again at any time.",
	"expired": "The sign-in took too long or was started in another browser. Please try again.",
}

func (h *Handlers) signup(c echo.Context) error {
	f := formOf(c, "name", "email", "next")
	return h.passwordForm(c, f, h.limits.signupAddress, h.limits.signupEmail,
		func(f views.Form) templ.Component { return views.SignupPage(h.page(c, "Sign up", "signup"), f) },
		func(ctx context.Context) (tether.User, error) {
			return h.accounts.SignUp(ctx, f.Value("name"), f.Value("email"), c.FormValue("password"))
		})
}

func (h *Handlers) login(c echo.Context) error {
	f := formOf(c, "email", "next")
	return h.passwordForm(c, f, h.limits.loginAddress, h.limits.loginAccount,
		func(f views.Form) templ.Component { return views.LoginPage(h.page(c, "Log in", "login"), f) },
		func(ctx context.Context) (tether.User, error) {
			return h.accounts.LogIn(ctx, f.Value("email"), c.FormValue("password"))
		})
}

// passwordForm answers a form that takes a password (sign-up, log in):
// refused while the client's address or the e-mail address has had too
// many tries (429, said on the form), one password hash at a time per
// client, then act; its refusal goes back on the form (page), its user is
// signed in and sent on to the form's "next".
func (h *Handlers) passwordForm(c echo.Context, f views.Form, byAddress, byEmail *throttle.Limiter,
	page func(views.Form) templ.Component, act func(ctx context.Context) (tether.User, error)) error {
	show := func(status int) func(views.Form) error {
		return func(f views.Form) error { return render(c, status, page(f), nil) }
	}
	if msg, ok := allow(c, byAddress, attempt{byEmail, accountKey(f.Value("email"))}); !ok {
		f.Error = msg
		return show(tooMany)(f)
	}
	release, err := h.limits.passwords.take(c.Request().Context(), clientKey(c))
	if err != nil {
		return err
	}
	defer release()
	u, err := act(c.Request().Context())
	if err != nil {
		return h.formError(c, err, f, show(http.StatusUnprocessableEntity))
	}
	return h.signIn(c, u.ID, f.Value("next"))
}

func formOf(c echo.Context, names ...string) views.Form {
	f := views.Form{Values: map[string]string{}, Errors: map[string]string{}}
	for _, n := range names {
		f.Values[n] = strings.TrimSpace(c.FormValue(n))
	}
	return f
}

// formError shows an Invalid problem on the form it came from; other errors
// go to the error handler.
func (h *Handlers) formError(c echo.Context, err error, f views.Form, show func(views.Form) error) error {
	p, ok := problem.As(err)
	if !ok || p.Kind != problem.Invalid && p.Kind != problem.Conflict {
		return err
	}
	if p.Field != "" {
		f.Errors[p.Field] = p.Message
	} else {
		f.Error = p.Message
	}
	return show(f)
}

// signIn rotates the session (accounts.SignIn): whatever session the
// browser had ends, and a new token is issued. It then goes to next (a
// local path) or, for someone in no organization yet, to the setup step,
// else to Projects.
func (h *Handlers) signIn(c echo.Context, userID int64, next string) error {
	previous := ""
	if ck, err := c.Cookie(sessionCookie); err == nil {
		previous = ck.Value
	}
	sess, err := h.accounts.SignIn(c.Request().Context(), userID, previous)
	if err != nil {
		return err
	}
	h.setCookie(c, sessionCookie, sess.Token, "/", accounts.SessionTTL)
	fallback := landing
	if !sess.Member {
		fallback = "/setup"
	}
	return redirect(c, http.StatusOK, next, fallback)
}

func (h *Handlers) logout(c echo.Context) error {
	if ck, err := c.Cookie(sessionCookie); err == nil {
		if err := h.accounts.EndSession(c.Request().Context(), ck.Value); err != nil {
			return err
		}
	}
	h.clearCookie(c, sessionCookie, "/")
	return redirect(c, http.StatusOK, "/", "/")
}

// startBitbucket begins "Log in with Bitbucket" (intent login) or "Grant
// access" (intent connect, signed in only).
func (h *Handlers) startBitbucket(c echo.Context) error {
	st := oauthState{Intent: c.FormValue("intent"), ReturnTo: localTarget(c.FormValue("return_to"), "")}
	switch st.Intent {
	case "login":
	case "connect":
		u := currentUser(c)
		if u == nil {
			return redirect(c, http.StatusUnauthorized, "/login", "/login")
		}
		st.UserID = u.ID
		if st.ReturnTo == "" {
			st.ReturnTo = "/account"
		}
	default:
		return problem.New(problem.Invalid, "Unknown sign-in request.")
	}
	raw := make([]byte, 24)
	rand.Read(raw)
	st.State = base64.RawURLEncoding.EncodeToString(raw)
	authURL, err := h.oauth.AuthURL(st.State)
	if err != nil {
		return err
	}
	encoded, err := h.stateCookie.Encode(oauthCookie, st)
	if err != nil {
		return err
	}
	h.setCookie(c, oauthCookie, encoded, oauthPath, oauthStateTTL)
	return c.Redirect(http.StatusSeeOther, authURL)
}

// bitbucketCallback finishes the OAuth dance: the state must match the
// cookie set when it began, then the code is exchanged and the person is
// signed in or their account connected.
func (h *Handlers) bitbucketCallback(c echo.Context) error {
	var st oauthState
	ck, err := c.Cookie(oauthCookie)
	if err == nil {
		err = h.stateCookie.Decode(oauthCookie, ck.Value, &st)
	}
	h.clearCookie(c, oauthCookie, oauthPath)
	if err != nil || st.State == "" || c.QueryParam("state") != st.State {
		h.log.Warn("oauth callback refused: state mismatch")
		return redirect(c, http.StatusOK, "/login?error=expired", "/login")
	}
	if e := c.QueryParam("error"); e != "" {
		if st.Intent == "connect" {
			return redirect(c, http.StatusOK, withQuery(st.ReturnTo, "bitbucket", "denied"), "/account")
		}
		return redirect(c, http.StatusOK, "/login?error=denied", "/login")
	}
	code := c.QueryParam("code")
	if code == "" {
		return problem.New(problem.Invalid, "Bitbucket sent no authorization code. Please try again.")
	}
	ctx := c.Request().Context()
	profile, tok, err := h.oauth.Complete(ctx, code)
	if err != nil {
		return err
	}
	if st.Intent == "connect" {
		u := currentUser(c)
		if u == nil || u.ID != st.UserID {
			return redirect(c, http.StatusOK, "/login?error=expired", "/login")
		}
		if err := h.accounts.Connect(ctx, u.ID, profile, tok); err != nil {
			return err
		}
		return redirect(c, http.StatusOK, withQuery(st.ReturnTo, "bitbucket", "connected"), "/account")
	}
	u, _, err := h.accounts.LogInWithBitbucket(ctx, profile, tok)
	if err != nil {
		return err
	}
	return h.signIn(c, u.ID, st.ReturnTo)
}

func withQuery(path, key, value string) string {
	u, err := url.Parse(path)
	if err != nil {
		return path
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}
