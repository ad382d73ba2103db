package bitbucket

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// A write (POST, PUT, DELETE) is judged only by the answer it asked for.
// Go's http.Client follows a 301 or 302 to a POST or DELETE as a GET of
// the new location, and the caller then reads the answer of a request it
// never made: a page of hooks decoded as "the hook just created", with no
// uuid. Bitbucket answers writes to the old path of a moved or renamed
// repository with such a redirect (field reports: CI resources that gave up
// on a moved repository until they followed it, e.g.
// zarplata/concourse-git-bitbucket-pr-resource#39), so the client follows
// no redirect for anything but GET, and a create answer that does not name
// what it created is an error too.

// MovedError is a redirect Bitbucket answered to a write: the repository
// was moved or renamed, and nothing was written. Location is where
// Bitbucket pointed, relative to the API URL when it lies under it.
type MovedError struct {
	Method, Path string
	Status       int
	Location     string
}

func (e *MovedError) Error() string {
	to := ""
	if e.Location != "" {
		to = " to " + e.Location
	}
	return fmt.Sprintf("bitbucket: %s %s: %d %s%s: the repository was moved or renamed; nothing was written",
		e.Method, e.Path, e.Status, http.StatusText(e.Status), to)
}

// IsMoved reports a write Bitbucket redirected because the repository was
// moved or renamed (see MovedError).
func IsMoved(err error) bool {
	var m *MovedError
	return errors.As(err, &m)
}

// IncompleteError is a 2xx answer to a create that does not name what was
// created — a deploy key without its id, a webhook without its uuid. Tether
// cannot tell whether, or what, Bitbucket created.
type IncompleteError struct {
	Method, Path string
	Missing      string // "id" or "uuid"
}

func (e *IncompleteError) Error() string {
	return fmt.Sprintf("bitbucket: %s %s: the answer has no %s, so it does not say what was created", e.Method, e.Path, e.Missing)
}

// writesStayPut returns a copy of hc that follows redirects for GET only
// (still under hc's own redirect policy, if it has one): the redirect of
// any other request comes back as it is, for do to refuse.
func writesStayPut(hc *http.Client) *http.Client {
	c := *hc
	policy := hc.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if via[0].Method != http.MethodGet {
			return http.ErrUseLastResponse
		}
		if policy != nil {
			return policy(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &c
}

// moved is the error for a 3xx answer to r.
func (c *Client) moved(r request, resp response) error {
	loc := resp.header.Get("Location")
	if strings.HasPrefix(loc, c.apiURL+"/") {
		loc = c.displayPath(loc)
	}
	return &MovedError{Method: r.method, Path: r.path, Status: resp.status, Location: r.redact(loc)}
}
