package bitbucket

import (
	"context"
	"net/url"
	"strings"
	"time"
)

// Branch is a branch of a repository and the commit it points at, from
// GET /repositories/{workspace}/{repo_slug}/refs/branches.
type Branch struct {
	Name          string
	Hash          string // target.hash, the full commit hash
	Message       string // target.message
	Author        string // target.author.user.display_name, else target.author.raw
	Date          time.Time
	DefaultMerge  string   // default_merge_strategy
	MergeStrategy []string // merge_strategies
}

type wireBranch struct {
	Name                 string   `json:"name"`
	Type                 string   `json:"type"`
	DefaultMergeStrategy string   `json:"default_merge_strategy"`
	MergeStrategies      []string `json:"merge_strategies"`
	Target               struct {
		Hash    string    `json:"hash"`
		Message string    `json:"message"`
		Date    timestamp `json:"date"`
		Author  struct {
			Raw  string `json:"raw"`
			User *struct {
				DisplayName string `json:"display_name"`
			} `json:"user"`
		} `json:"author"`
	} `json:"target"`
}

// Branches lists the repository's open branches with the commit each
// points at: one paged listing (pagelen 100, the most recently changed
// first, "next" followed) that costs one API call per hundred branches.
// Needs the repository scope; 404 when the repository is gone or hidden.
// Bitbucket: "List open branches" in the Refs API group.
func (c *Client) Branches(ctx context.Context, accessToken, workspace, slug string) ([]Branch, error) {
	q := url.Values{"pagelen": {"100"}, "sort": {"-target.date"}}
	wire, err := listAll[wireBranch](ctx, c, "GET /repositories/{workspace}/{repo_slug}/refs/branches", accessToken, apiPath("repositories", workspace, slug, "refs", "branches"), q)
	if err != nil {
		return nil, err
	}
	out := make([]Branch, 0, len(wire))
	for _, w := range wire {
		b := Branch{Name: w.Name, Hash: w.Target.Hash, Message: w.Target.Message, Date: w.Target.Date.Time,
			Author: strings.TrimSpace(w.Target.Author.Raw), DefaultMerge: w.DefaultMergeStrategy, MergeStrategy: w.MergeStrategies}
		if u := w.Target.Author.User; u != nil && u.DisplayName != "" {
			b.Author = u.DisplayName
		}
		out = append(out, b)
	}
	return out, nil
}
