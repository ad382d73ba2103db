// Package problem holds the errors Tether's services return when a request
// cannot be done as asked. Each carries a kind, which the HTTP layer maps to
// a status in one place, and a message that is safe to show a person: it
// never contains a secret.
package problem

import (
	"errors"
	"fmt"
)

// Kind says what went wrong from the caller's point of view.
type Kind int

const (
	// Invalid input: the person can fix it where they typed it (422).
	Invalid Kind = iota + 1
	// NotFound: the thing does not exist or is not theirs to see (404).
	NotFound
	// Forbidden: they may see it but not do this (403).
	Forbidden
	// Conflict: the request clashes with what is stored (409).
	Conflict
	// Unauthenticated: they must sign in first (401).
	Unauthenticated
	// Unavailable: Bitbucket could not be reached or refused for now (502).
	Unavailable
)

// Actions a problem can offer next to its message.
const (
	// ActionGrant offers "Grant access": the fix is a new Bitbucket grant
	// (e.g. Bitbucket answered 403 naming a scope the grant lacks).
	ActionGrant = "grant"
)

// Error is a problem with a message meant for people. Field names the form
// field the message belongs to, when there is one; Action, when set, is
// the fix to offer beside the message (ActionGrant).
type Error struct {
	Kind    Kind
	Field   string
	Message string
	Action  string
	Err     error // the cause, for logs; never shown
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Message, e.Err)
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// New returns a problem of the given kind.
func New(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Field returns an Invalid problem about one form field.
func Field(field, format string, args ...any) *Error {
	return &Error{Kind: Invalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns a problem of the given kind that keeps cause for the logs.
func Wrap(kind Kind, cause error, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...), Err: cause}
}

// Grant returns a problem whose fix is to grant access again, offered as
// a "Grant access" button beside the message.
func Grant(kind Kind, cause error, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...), Action: ActionGrant, Err: cause}
}

// As returns the problem in err's chain, if any.
func As(err error) (*Error, bool) {
	var p *Error
	ok := errors.As(err, &p)
	return p, ok
}

// Is reports whether err is a problem of the given kind.
func Is(err error, kind Kind) bool {
	p, ok := As(err)
	return ok && p.Kind == kind
}
