package bitbucket

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"time"
)

// Error is a non-2xx answer from Bitbucket: the API's
// {"type":"error","error":{"message":…}} or the OAuth endpoint's
// {"error":…,"error_description":…}.
type Error struct {
	Status     int           // HTTP status
	Message    string        // Bitbucket's message, safe to show (never includes tokens)
	RetryAfter time.Duration // from Retry-After on 429
	Required   []string      // detail.required scopes on 403, if given

	method, path string // the request, for Error()
	wrapped      error  // a sentinel such as ErrInvalidGrant
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.method == "" {
		return fmt.Sprintf("bitbucket: %d %s", e.Status, msg)
	}
	return fmt.Sprintf("bitbucket: %s %s: %d %s", e.method, e.path, e.Status, msg)
}

// Unwrap lets errors.Is find ErrInvalidGrant in a token endpoint answer.
func (e *Error) Unwrap() error { return e.wrapped }

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
