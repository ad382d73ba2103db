package projects

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/singleflight"

	"tether/internal/bitbucket"
	"tether/internal/problem"
)

// choicesStore is what Choices reads.
type choicesStore interface {
	UsedRepositories(ctx context.Context) (map[string]bool, error)
}

// Choices lists the repositories a person can make a project from, for the
// New project picker.
type Choices struct {
	// ListFresh is how recent a repository list must be to answer a
	// request for a fresh one ("Refresh list", the troubleshooting
	// checklist): pressing again and again lists every workspace once.
	ListFresh time.Duration

	store choicesStore
	conns Connections
	bb    Bitbucket

	mu      sync.Mutex
	cache   map[int64]repoList // repository lists per user, for the picker's search
	listing singleflight.Group // one listing per user at a time
}

type repoList struct {
	repos   []bitbucket.Repository
	unread  []Unread
	fetched time.Time
}

// repoListTTL is how long the picker reuses a user's repository list while
// they type a search, instead of asking Bitbucket on every keystroke.
const repoListTTL = 2 * time.Minute

func newChoices(store choicesStore, conns Connections, bb Bitbucket) *Choices {
	return &Choices{ListFresh: 10 * time.Second, store: store, conns: conns, bb: bb, cache: map[int64]repoList{}}
}

// Choice is a repository in the New project picker. Its Admin says whether
// the person administers it: Create adds a deploy key and a webhook, which
// only repository admins may do.
type Choice struct {
	bitbucket.Repository
	Used bool // a project for it exists
}

// Unread is a workspace the picker could not read, and why, for people.
type Unread struct {
	Workspace string // its slug
	Reason    string // e.g. "Bitbucket answered 403: …"
	Transient bool   // Bitbucket could not be asked: trying again may help
	Grant     bool   // the grant lacks a scope: the fix is Grant access
}

// Listing is what the picker shows: the repositories it could read, and
// the workspaces it could not (one workspace's answer decides that
// workspace only).
type Listing struct {
	Choices []Choice
	Unread  []Unread
}

// MaxSearch bounds the picker's search: "workspace/slug" is at most 191
// characters, and a search that long finds the one repository.
const MaxSearch = 200

// Repositories lists the repositories of every workspace the user belongs
// to, each marked with whether they administer it and whether it already
// has a project, filtered by a case-insensitive name search of at most
// MaxSearch characters, and the workspaces that could not be read. fresh
// skips the short-lived cache. A listing costs the user's Bitbucket budget
// 1 + two paged calls per workspace (see bitbucket.RepositoriesWithAdmin).
func (s *Choices) Repositories(ctx context.Context, userID int64, search string, fresh bool) (Listing, error) {
	if utf8.RuneCountInString(search) > MaxSearch {
		return Listing{}, problem.Field("q", "Search for at most %d characters of a repository's name.", MaxSearch)
	}
	list, err := s.repositories(ctx, userID, fresh)
	if err != nil {
		return Listing{}, err
	}
	used, err := s.store.UsedRepositories(ctx)
	if err != nil {
		return Listing{}, err
	}
	search = strings.ToLower(strings.TrimSpace(search))
	out := Listing{Unread: list.unread}
	for _, r := range list.repos {
		if search != "" && !strings.Contains(strings.ToLower(r.FullName), search) {
			continue
		}
		out.Choices = append(out.Choices, Choice{Repository: r, Used: used[r.UUID]})
	}
	return out, nil
}

func (s *Choices) repositories(ctx context.Context, userID int64, fresh bool) (repoList, error) {
	s.mu.Lock()
	cached, ok := s.cache[userID]
	s.mu.Unlock()
	maxAge := repoListTTL
	if fresh {
		maxAge = s.ListFresh
	}
	if ok && time.Since(cached.fetched) < maxAge {
		return cached, nil
	}
	// People typing, and several tabs, share one listing in flight.
	v, err, _ := s.listing.Do(strconv.FormatInt(userID, 10), func() (any, error) {
		var repos []bitbucket.Repository
		var partial *bitbucket.PartialError
		err := s.conns.Do(ctx, userID, func(ctx context.Context, token string) error {
			var err error
			repos, err = s.bb.RepositoriesWithAdmin(ctx, token)
			if errors.As(err, &partial) {
				return nil // what was read is the answer; partial says the rest
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		sort.Slice(repos, func(i, j int) bool { return repos[i].FullName < repos[j].FullName })
		list := repoList{repos: repos, fetched: time.Now()}
		if partial != nil {
			for _, u := range partial.Unread {
				list.unread = append(list.unread, Unread{Workspace: u.Workspace.Slug, Reason: unreadReason(u.Err),
					Transient: bitbucket.IsTransient(u.Err), Grant: len(bitbucket.MissingScopes(u.Err)) > 0})
			}
		}
		s.mu.Lock()
		s.cache[userID] = list
		s.mu.Unlock()
		return list, nil
	})
	if err != nil {
		return repoList{}, bitbucketProblem(err, "list your repositories")
	}
	return v.(repoList), nil
}

// unreadReason says why a workspace could not be listed, in Bitbucket's
// words where it gave some.
func unreadReason(err error) string {
	var budget *bitbucket.BudgetError
	var be *bitbucket.Error
	until, limited := bitbucket.RateLimited(err)
	switch {
	case limited && !until.IsZero():
		return "Bitbucket is rate limiting this connection until " + bitbucket.WaitEnd(until)
	case limited:
		return "Bitbucket is rate limiting this connection"
	case errors.As(err, &budget):
		return "this connection's hourly Bitbucket API budget is spent until " + bitbucket.WaitEnd(budget.Until)
	case len(bitbucket.MissingScopes(err)) > 0:
		return "the grant lacks the " + strings.Join(bitbucket.MissingScopes(err), ", ") + " permission"
	case errors.As(err, &be) && be.Reason() != "":
		return fmt.Sprintf("Bitbucket answered %d: %s", be.Status, be.Reason())
	case errors.As(err, &be):
		return fmt.Sprintf("Bitbucket answered %d", be.Status)
	}
	return "Bitbucket did not answer"
}

// forget drops the user's cached list: a project was just made from it.
func (s *Choices) forget(userID int64) {
	s.mu.Lock()
	delete(s.cache, userID)
	s.mu.Unlock()
}
