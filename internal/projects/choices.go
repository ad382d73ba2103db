package projects

import (
	"context"
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

// MaxSearch bounds the picker's search: "workspace/slug" is at most 191
// characters, and a search that long finds the one repository.
const MaxSearch = 200

// Repositories lists the repositories of every workspace the user belongs
// to, each marked with whether they administer it and whether it already
// has a project, filtered by a case-insensitive name search of at most
// MaxSearch characters. fresh skips the short-lived cache. A listing costs
// the user's Bitbucket budget 1 + two paged calls per workspace (see
// bitbucket.RepositoriesWithAdmin).
func (s *Choices) Repositories(ctx context.Context, userID int64, search string, fresh bool) ([]Choice, error) {
	if utf8.RuneCountInString(search) > MaxSearch {
		return nil, problem.Field("q", "Search for at most %d characters of a repository's name.", MaxSearch)
	}
	repos, err := s.repositories(ctx, userID, fresh)
	if err != nil {
		return nil, err
	}
	used, err := s.store.UsedRepositories(ctx)
	if err != nil {
		return nil, err
	}
	search = strings.ToLower(strings.TrimSpace(search))
	var out []Choice
	for _, r := range repos {
		if search != "" && !strings.Contains(strings.ToLower(r.FullName), search) {
			continue
		}
		out = append(out, Choice{Repository: r, Used: used[r.UUID]})
	}
	return out, nil
}

func (s *Choices) repositories(ctx context.Context, userID int64, fresh bool) ([]bitbucket.Repository, error) {
	s.mu.Lock()
	cached, ok := s.cache[userID]
	s.mu.Unlock()
	maxAge := repoListTTL
	if fresh {
		maxAge = s.ListFresh
	}
	if ok && time.Since(cached.fetched) < maxAge {
		return cached.repos, nil
	}
	// People typing, and several tabs, share one listing in flight.
	v, err, _ := s.listing.Do(strconv.FormatInt(userID, 10), func() (any, error) {
		var repos []bitbucket.Repository
		err := s.conns.Do(ctx, userID, func(ctx context.Context, token string) error {
			var err error
			repos, err = s.bb.RepositoriesWithAdmin(ctx, token)
			return err
		})
		if err != nil {
			return nil, err
		}
		sort.Slice(repos, func(i, j int) bool { return repos[i].FullName < repos[j].FullName })
		s.mu.Lock()
		s.cache[userID] = repoList{repos: repos, fetched: time.Now()}
		s.mu.Unlock()
		return repos, nil
	})
	if err != nil {
		return nil, bitbucketProblem(err, "list your repositories")
	}
	return v.([]bitbucket.Repository), nil
}

// forget drops the user's cached list: a project was just made from it.
func (s *Choices) forget(userID int64) {
	s.mu.Lock()
	delete(s.cache, userID)
	s.mu.Unlock()
}
