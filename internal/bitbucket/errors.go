package bitbucket

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// Error is a non-2xx answer from Bitbucket, with everything it said in
// its own words. The REST API answers {"type":"error","error":{…}} with a
// "message", and may add "fields" (a reason per field: an object of field
// → list of reasons, or a list of strings) and "detail" (text, or an
// object naming the "required" and "granted" scopes on a 403). The OAuth
// token endpoint answers {"error","error_description"} (RFC 6749 §5.2).
// Field reports of each shape: e.g. drone/drone#1650 (token endpoint),
// Shippable/support#2144 and ovh/cds#6292 (fields as an object and as a
// list), NixOS/hydra#493 (a field's length).
type Error struct {
	Status     int           // HTTP status
	Message    string        // error.message, or the token endpoint's "error: error_description"; never includes tokens
	Detail     string        // error.detail when Bitbucket gives it as text
	Fields     []FieldError  // error.fields, sorted by field name
	Required   []string      // detail.required scopes on a 403, if given
	OAuthError string        // the token endpoint's error code, e.g. "invalid_grant"
	RetryAfter time.Duration // from Retry-After on 429
	// PausedUntil, on a 429 to a call made with a connection's budget, is
	// when that connection's pause ends (Budget.Observe: Retry-After, a
	// minute without one, an hour at most); zero otherwise.
	PausedUntil time.Time

	method, path string // the request, for Error()
	wrapped      error  // a sentinel such as ErrGrantRefused
}

// FieldError is Bitbucket's reason about one field of a request, e.g.
// {Field: "url", Message: "Enter a valid URL."}. Field is "" when Bitbucket
// listed the reason without naming a field.
type FieldError struct{ Field, Message string }

func (e *Error) Error() string {
	msg := e.Reason()
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.method == "" {
		return fmt.Sprintf("bitbucket: %d %s", e.Status, msg)
	}
	return fmt.Sprintf("bitbucket: %s %s: %d %s", e.method, e.path, e.Status, msg)
}

// Unwrap lets errors.Is find ErrGrantRefused or ErrInvalidClient in a
// token endpoint answer.
func (e *Error) Unwrap() error { return e.wrapped }

// genericMessages are messages that say nothing the fields do not.
var genericMessages = map[string]bool{"": true, "bad request": true, "invalid request": true}

// Reason is what Bitbucket said, on one line, for people: the message,
// each field's reason as "field: reason" (unless the message already says
// it), the detail text and the scopes a 403 requires. "" when Bitbucket
// said nothing.
func (e *Error) Reason() string {
	var parts []string
	add := func(s string) {
		s = strings.TrimSpace(s)
		for _, p := range parts {
			if s == "" || strings.Contains(p, s) {
				return
			}
		}
		parts = append(parts, s)
	}
	if !genericMessages[strings.ToLower(strings.TrimSuffix(e.Message, "."))] || len(e.Fields) == 0 {
		add(e.Message)
	}
	for _, f := range e.Fields {
		if f.Field == "" {
			add(f.Message)
		} else {
			add(f.Field + ": " + f.Message)
		}
	}
	add(e.Detail)
	if len(e.Required) > 0 {
		add("required scopes: " + strings.Join(e.Required, ", "))
	}
	return clip(strings.Join(parts, "; "), 300)
}

// FieldReason is Bitbucket's reason about one field ("" when it named
// none), e.g. FieldReason("url") → "Enter a valid URL.".
func (e *Error) FieldReason(field string) string {
	var out []string
	for _, f := range e.Fields {
		if f.Field == field {
			out = append(out, f.Message)
		}
	}
	return strings.Join(out, " ")
}

// MissingScopes returns the OAuth scopes a 403 says the grant lacks
// (error.detail.required), or nil when err is no such answer. Such a 403
// is about the grant, not about the person's rights on a repository: the
// fix is to grant access again.
func MissingScopes(err error) []string {
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusForbidden {
		return nil
	}
	return e.Required
}

// transientError is a failure to get any answer at all: connection
// refused or reset, DNS, TLS, timeouts, an interrupted body.
type transientError struct {
	op  string
	err error
}

func (e *transientError) Error() string { return "bitbucket: " + e.op + ": " + e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

func (e *transientError) timeout() bool {
	var ne net.Error
	return errors.Is(e.err, context.DeadlineExceeded) || (errors.As(e.err, &ne) && ne.Timeout())
}

// IsTransient reports whether err means "could not reach Bitbucket" rather
// than a verdict from it: a network error, a timeout or context deadline, a
// 5xx, a 429, or a call the budget held back (*BudgetError). Health checks
// must show such results as unknown, never as broken.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	if _, ok := Deferred(err); ok {
		return true
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Status >= 500 || e.Status == http.StatusTooManyRequests
	}
	var te *transientError
	if errors.As(err, &te) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// RateLimited reports whether err is Bitbucket rate limiting the
// connection — a 429, or a call the budget held back while a 429's pause
// lasts — and until when Tether waits: the one end people are told
// wherever the wait shows. until is zero when no budget set a pause (a
// call outside any connection).
func RateLimited(err error) (until time.Time, ok bool) {
	var budget *BudgetError
	if errors.As(err, &budget) {
		return budget.Until, budget.Paused
	}
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusTooManyRequests {
		return e.PausedUntil, true
	}
	return time.Time{}, false
}

func hasStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

// IsUnauthorized reports a 401: the access token is invalid or revoked.
func IsUnauthorized(err error) bool { return hasStatus(err, http.StatusUnauthorized) }

// IsForbidden reports a 403: a missing scope or no permission on the
// resource; see Error.Required.
func IsForbidden(err error) bool { return hasStatus(err, http.StatusForbidden) }

// IsNotFound reports a 404: the resource does not exist or is not visible.
func IsNotFound(err error) bool { return hasStatus(err, http.StatusNotFound) }

// changePattern finds the change Bitbucket names when it retires an API,
// e.g. "CHANGE-2770 - Functionality has been deprecated".
var changePattern = regexp.MustCompile(`\bCHANGE-[0-9]+\b`)

// Deprecated reports a 410 Gone: Bitbucket retired the endpoint. change is
// the CHANGE-nnnn its message names ("" when it names none). Such an answer
// is about Bitbucket's API, not about a project: callers report it once,
// never as a project's failure.
func Deprecated(err error) (change string, ok bool) {
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusGone {
		return "", false
	}
	return ChangeOf(e.Message), true
}

// ChangeOf returns the first CHANGE-nnnn in a Bitbucket message, or "".
func ChangeOf(message string) string { return changePattern.FindString(message) }
