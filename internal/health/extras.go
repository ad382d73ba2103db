package health

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"tether/internal/bitbucket"
	"tether/internal/deploykeys"
	"tether/internal/tether"
)

// A check reads a part by listing the repository's deploy keys or webhooks
// (one call, as reading the one would cost), which also shows the extra
// ones Tether made for the project: a create Bitbucket carried out after
// Tether gave up, a delete that never went through. They are reported in
// the result's detail and recorded as leftovers, which the projects
// Cleanup removes. Only keys and hooks that carry this instance's marker
// for the project, or (a hook) send to the project's own URL, are
// Tether's; nobody else's is ever reported or touched.

// ownKeys picks the project's key in force from a repository's keys, and
// the extra ones Tether made for the project. A list without the key in
// force answers errNotListed.
func (c *Checker) ownKeys(p tether.Project, stored tether.DeployKey, keys []bitbucket.DeployKey, err error) (bitbucket.DeployKey, []bitbucket.DeployKey, error) {
	if err != nil {
		return bitbucket.DeployKey{}, nil, err
	}
	mark := tether.Marker{Instance: c.Instance, ProjectID: p.ID}
	var ours bitbucket.DeployKey
	var extra []bitbucket.DeployKey
	for _, k := range keys {
		switch {
		case k.ID == stored.BitbucketKeyID:
			ours = k
		case mark.Same(k.Label):
			extra = append(extra, k)
		}
	}
	if ours.ID == 0 {
		return ours, extra, errNotListed
	}
	return ours, extra, nil
}

// ownHooks is ownKeys for webhooks.
func (c *Checker) ownHooks(p tether.Project, stored tether.Webhook, hooks []bitbucket.Hook, err error) (bitbucket.Hook, []bitbucket.Hook, error) {
	if err != nil {
		return bitbucket.Hook{}, nil, err
	}
	mark := tether.Marker{Instance: c.Instance, ProjectID: p.ID}
	var ours bitbucket.Hook
	var extra []bitbucket.Hook
	for _, h := range hooks {
		switch {
		case tether.NormalizeHookUUID(h.UUID) == tether.NormalizeHookUUID(stored.UUID):
			ours = h
		case mark.Same(h.Description) || h.URL == c.hookURL(p):
			extra = append(extra, h)
		}
	}
	if ours.UUID == "" {
		return ours, extra, errNotListed
	}
	return ours, extra, nil
}

// withExtras adds the extra keys or hooks of r to a part's detail.
func withExtras(h tether.Health, r remote) tether.Health {
	var names []string
	what := "deploy key"
	if h.Part == tether.PartWebhook {
		what = "webhook"
		for _, x := range r.extraHooks {
			names = append(names, "{"+tether.NormalizeHookUUID(x.UUID)+"}")
		}
	} else {
		for _, x := range r.extraKeys {
			names = append(names, "id "+strconv.Itoa(x.ID))
		}
	}
	if len(names) == 0 {
		return h
	}
	s, them := "", "it"
	if len(names) > 1 {
		s, them = "s", "them"
	}
	h.Detail = strings.TrimSpace(h.Detail + fmt.Sprintf(" Bitbucket also has %d more %s%s Tether made for this project (%s), left over from a create or delete that did not finish; Tether removes %s.",
		len(names), what, s, strings.Join(names, ", "), them))
	return h
}

// recordExtras records r's extra keys and hooks as leftovers (each once).
func (c *Checker) recordExtras(ctx context.Context, p tether.Project, r remote) error {
	var ls []tether.Leftover
	// Match is what a create Tether stopped waiting for is watched for
	// by (the key's fingerprint, the hook's marker attempt): the store
	// closes that watch when the part it waited for is found here.
	extra := func(part, id, label, match string) {
		ls = append(ls, tether.Leftover{OrgID: p.OrgID, ProjectID: p.ID, ProjectName: p.Name, OwnerID: p.OwnerID,
			RepoUUID: p.RepoUUID, FullName: r.repo.FullName, Part: part, RemoteID: id, Label: label, Match: match,
			Why: "found on the repository by a check", NextAt: c.clock.Now()})
	}
	for _, k := range r.extraKeys {
		extra(tether.PartDeployKey, strconv.Itoa(k.ID), k.Label, deploykeys.Fingerprint(k.Key))
	}
	for _, h := range r.extraHooks {
		m, _ := tether.ParseMarker(h.Description)
		extra(tether.PartWebhook, h.UUID, h.Description, m.Attempt)
	}
	if len(ls) == 0 || p.OrgID == 0 {
		return nil
	}
	return c.store.AddLeftovers(context.WithoutCancel(ctx), ls)
}
