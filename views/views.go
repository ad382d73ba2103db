// Package views renders Tether's pages and the htmx partials inside them as
// templ components. A page and the poll that refreshes part of it render the
// same partial component, so the two can never disagree.
package views

import (
	"context"
	"tether/internal/tether"
)

// Page is what every full page needs around its content.
type Page struct {
	Title   string
	User    *tether.User // nil when signed out
	CSRF    string       // sent by htmx as X-CSRF-Token, and in every form
	Demo    bool         // running against the built-in Bitbucket emulator
	DemoURL string       // the emulator's control page, in demo mode
	// DemoLeftovers counts projects from an earlier demo run, whose keys,
	// hooks and grants the restarted emulator no longer has.
	DemoLeftovers int
	Nav           string // which nav entry is current

	Org   tether.Organization // the organization the person looks at
	Orgs  []tether.Membership // every organization they belong to
	Admin bool                // they administer Org

	Deprecations []tether.Deprecation // for admins: Bitbucket APIs retired under Tether
	// ClientFault, for admins, is Bitbucket's token endpoint refusing
	// Tether's OAuth consumer key or secret (its words), "" when it does
	// not.
	ClientFault string
	// Flash is the outcome of what the person did on the page before,
	// carried across a redirect (setFlash): a deleted project, a form
	// posted without JavaScript.
	Flash Notice
}

// Notice is the outcome of an action shown as a message: Kind is "ok",
// "warning" or "error"; an empty Message shows nothing.
type Notice struct {
	Kind    string
	Message string
}

// Form carries what a person typed back to them with messages per field.
type Form struct {
	Values map[string]string
	Errors map[string]string
	Error  string // a message about the whole form
}

// Value returns the typed value of a field.
func (f Form) Value(name string) string { return f.Values[name] }

// FieldError returns the message for a field, if any.
func (f Form) FieldError(name string) string { return f.Errors[name] }

// Invalid returns the aria-invalid value for a field: "true" when it has a
// message, "" (attribute omitted) otherwise.
func (f Form) Invalid(name string) string {
	if f.Errors[name] != "" {
		return "true"
	}
	return ""
}

// csrfKey carries the request's CSRF token in the context views render
// under.
type csrfKey struct{}

// WithCSRF returns ctx carrying the CSRF token the forms rendered under it
// post (CSRFField).
func WithCSRF(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, csrfKey{}, token)
}

func csrfOf(ctx context.Context) string {
	t, _ := ctx.Value(csrfKey{}).(string)
	return t
}
