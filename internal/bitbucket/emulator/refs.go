package emulator

import (
	"net/http"
	"slices"
	"strings"
)

// apiListBranches is GET /repositories/{workspace}/{repo}/refs/branches:
// the open branches, each with the commit it points at, paged like every
// collection. Bitbucket lists them in ref-name order unless sort is given;
// sort=name, -name, target.date and -target.date are understood, and q
// filters on name with BBQL.
func apiListBranches(c *apiCall) reply {
	r, rep := c.lookupRepo()
	if rep != nil {
		return *rep
	}
	q := c.r.URL.Query()
	var match predicate
	if f := q.Get("q"); f != "" {
		var err error
		if match, err = parseBBQL(f); err != nil {
			return fail(http.StatusBadRequest, err.Error())
		}
	}
	var names []string
	for ref := range r.refs {
		if name, ok := strings.CutPrefix(ref, "refs/heads/"); ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	if match != nil {
		var kept []string
		for _, n := range names {
			keep, err := match(func(field string) (any, bool) {
				switch field {
				case "name":
					return n, true
				case "target.hash":
					return r.refs[branchRef(n)], true
				}
				return nil, false
			})
			if err != nil {
				return fail(http.StatusBadRequest, err.Error())
			}
			if keep {
				kept = append(kept, n)
			}
		}
		names = kept
	}
	switch sort := q.Get("sort"); sort {
	case "", "name":
	case "-name":
		slices.Reverse(names)
	case "target.date", "-target.date":
		slices.SortStableFunc(names, func(a, b string) int {
			n := r.commits[r.refs[branchRef(a)]].date.Compare(r.commits[r.refs[branchRef(b)]].date)
			if sort[0] == '-' {
				return -n
			}
			return n
		})
	default:
		return fail(http.StatusBadRequest, "Invalid sort field: "+strings.TrimPrefix(sort, "-"))
	}
	values := make([]any, 0, len(names))
	for _, n := range names {
		values = append(values, c.e.branchJSON(c.s, r, n))
	}
	return c.page(values)
}

// branchJSON is a branch as the refs API answers it: the ref's links, the
// merge strategies, and the full target commit with its repository.
func (e *Emulator) branchJSON(s site, r *repo, name string) map[string]any {
	api := s.api() + "/repositories/" + repoPath(r)
	target := e.commitJSON(s, r, r.commits[r.refs[branchRef(name)]])
	target["repository"] = repoRef(s, r)
	return map[string]any{
		"name": name,
		"links": map[string]any{
			"commits": href(api + "/commits/" + name),
			"self":    href(api + "/refs/branches/" + name),
			"html":    href(s.base + "/" + repoPath(r) + "/branch/" + name),
		},
		"default_merge_strategy": "merge_commit",
		"merge_strategies":       []string{"merge_commit", "squash", "fast_forward"},
		"type":                   "branch",
		"target":                 target,
	}
}
