package projects

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"tether/internal/bitbucket"
	"tether/internal/connections"
	"tether/internal/deploykeys"
	"tether/internal/problem"
	"tether/internal/tether"
	"tether/internal/webhooks"
)

// partsStore is what the flow records about leftovers.
type partsStore interface {
	AddLeftovers(ctx context.Context, ls []tether.Leftover, entries ...tether.Audit) error
	ProjectLeftovers(ctx context.Context, projectID int64) ([]tether.Leftover, error)
	RetryLeftover(ctx context.Context, l tether.Leftover, next time.Time, entries ...tether.Audit) error
	SettleLeftover(ctx context.Context, l tether.Leftover, entries ...tether.Audit) error
}

// parts is the one flow by which every operation changes what ties a
// project to its repository:
//
//  1. make: create the new deploy key and/or webhook on the repository,
//     each signed with the project's tether.Marker. A create whose answer
//     is lost or unclear (no answer, a 5xx, a 2xx naming nothing) is
//     confirmed by listing the repository: found, it is adopted; not
//     found after no answer, it is recorded as a leftover the Cleanup
//     looks for, since Bitbucket may still carry it out.
//  2. commit: the caller stores the new parts, and records the old ones
//     as leftovers, in one transaction. Until then nothing old was
//     touched; if it fails, what step 1 made is removed again (undo).
//  3. letGo: the project's leftovers — the old parts just recorded, and
//     any from before — are removed from Bitbucket; what cannot be stays
//     recorded for the Cleanup, and the person is told.
type parts struct {
	log      *slog.Logger
	bb       Bitbucket
	store    partsStore
	hookBase string
	instance string
	// retryIn is how long a leftover that failed attempts times waits
	// for its next try (the Cleanup's backoff).
	retryIn func(attempts int) time.Duration
	now     func() time.Time
}

// place is a repository as Tether writes to it: its "{uuid}" in place of
// the slug, under the workspace it was last seen in. Bitbucket's API takes
// "the repository slug or the UUID of the repository, surrounded by
// curly-braces" wherever a path names {repo_slug} (its OpenAPI description
// of the parameter), so a renamed repository keeps its path; one moved to
// another workspace answers writes with a redirect, which the client
// refuses (bitbucket.MovedError).
type place struct{ workspace, uuid, fullName string }

func projectPlace(p tether.Project) place { return place{p.Workspace, p.RepoUUID, p.FullName} }

func repoPlace(r bitbucket.Repository) place { return place{r.Workspace.Slug, r.UUID, r.FullName} }

func leftoverPlace(l tether.Leftover) place {
	ws, _, _ := strings.Cut(l.FullName, "/")
	return place{ws, l.RepoUUID, l.FullName}
}

// order is what one operation asks of the flow.
type order struct {
	project   tether.Project // its id (reserved by Create), name and organization
	actor     int64          // who acts, for the audit log
	owner     int64          // whose connection writes: the leftovers' too
	to        place          // where the new parts go
	key, hook bool           // which parts are made
	// keyRefused is what a refused key (403) means to the person.
	keyRefused error
	// keep says what stays as it was when the order fails, e.g. "The old
	// key stays in force."; done what holds when it succeeds, e.g. "The
	// new key is in force."
	keep, done string
	// its names the parts let go of in messages: "the old" or "its".
	its string
	// auditRemovals writes an audit entry for each part let go of and
	// removed (Delete); otherwise only earlier leftovers get one.
	auditRemovals bool
}

// made is what the flow created and confirmed on the repository.
type made struct {
	key   *tether.DeployKey
	hook  *tether.Webhook
	notes []string // told to the person: a late answer found and kept
}

// replace runs the whole flow for o: make, commit, let go. old are the
// parts commit records as leftovers. It returns what the person should
// read besides o.done ("" when nothing), or the error: commit's own (after
// undoing what was made), or a problem saying what failed and, from
// o.keep, what stays.
func (f *parts) replace(ctx context.Context, token string, o order, old []tether.Leftover, commit func(made) error) (string, error) {
	m, err := f.make(ctx, token, o)
	if err != nil {
		return "", err
	}
	if err := commit(m); err != nil {
		return "", f.undo(ctx, token, o, m, err)
	}
	pending, err := f.store.ProjectLeftovers(ctx, o.project.ID)
	if err != nil {
		f.log.Error("list leftovers", "project_id", o.project.ID, "err", err)
		pending = old
	}
	inUse := map[string]bool{}
	if m.key != nil {
		inUse[tether.PartDeployKey+strconv.Itoa(m.key.BitbucketKeyID)] = true
	}
	if m.hook != nil {
		inUse[tether.PartWebhook+tether.NormalizeHookUUID(m.hook.UUID)] = true
	}
	pending = slices.DeleteFunc(pending, func(l tether.Leftover) bool { return inUse[l.Part+l.RemoteID] })
	left := f.letGo(context.WithoutCancel(ctx), token, o, pending, true, old...)
	return strings.TrimSpace(strings.Join(append(m.notes, remains(left)), " ")), nil
}

// undo takes what m made off the repository again after the operation
// failed with err, and returns err, saying also what could not be taken
// off (recorded for the Cleanup) when err is for people.
func (f *parts) undo(ctx context.Context, token string, o order, m made, err error) error {
	var ls []tether.Leftover
	if m.key != nil {
		ls = append(ls, f.leftover(o, o.to, tether.PartDeployKey, strconv.Itoa(m.key.BitbucketKeyID), m.key.Fingerprint, "undone after a failure"))
	}
	if m.hook != nil {
		ls = append(ls, f.leftover(o, o.to, tether.PartWebhook, m.hook.UUID, "", "undone after a failure"))
	}
	left := f.letGo(context.WithoutCancel(ctx), token, o, ls, false)
	if pr, ok := problem.As(err); ok && len(left) > 0 {
		return problem.Wrap(pr.Kind, pr.Err, "%s %s", pr.Message, remains(left))
	}
	return err
}

// make creates what o asks for: the key, then the webhook. If the webhook
// fails, the key is taken off again.
func (f *parts) make(ctx context.Context, token string, o order) (made, error) {
	var m made
	if o.key {
		k, note, err := f.makeKey(ctx, token, o)
		if err != nil {
			return made{}, err
		}
		m.key, m.notes = k, append(m.notes, note...)
	}
	if o.hook {
		h, note, err := f.makeHook(ctx, token, o)
		if err != nil {
			return made{}, f.undo(ctx, token, o, m, err)
		}
		m.hook, m.notes = h, append(m.notes, note...)
	}
	return m, nil
}

func (f *parts) makeKey(ctx context.Context, token string, o order) (*tether.DeployKey, []string, error) {
	gen, err := deploykeys.Generate(o.to.fullName)
	if err != nil {
		return nil, nil, err
	}
	label := tether.Marker{Instance: f.instance, ProjectID: o.project.ID}.Label(o.to.fullName)
	id, notes, err := f.create(ctx, token, o, tether.Leftover{Part: tether.PartDeployKey, Label: label, Match: gen.Fingerprint},
		func() (string, error) {
			k, err := f.bb.CreateDeployKey(ctx, token, o.to.workspace, o.to.uuid, gen.Public, label)
			return strconv.Itoa(k.ID), err
		},
		func(ctx context.Context) (string, error) {
			keys, err := f.bb.DeployKeys(ctx, token, o.to.workspace, o.to.uuid)
			for _, k := range keys {
				if deploykeys.SameKey(k.Key, gen.Public) {
					return strconv.Itoa(k.ID), err
				}
			}
			return "", err
		})
	if err != nil {
		return nil, nil, err
	}
	remoteID, _ := strconv.Atoi(id)
	return &tether.DeployKey{BitbucketKeyID: remoteID, PublicKey: gen.Public, Fingerprint: gen.Fingerprint, PrivateKey: gen.Private}, notes, nil
}

func (f *parts) makeHook(ctx context.Context, token string, o order) (*tether.Webhook, []string, error) {
	mark := tether.Marker{Instance: f.instance, ProjectID: o.project.ID, Attempt: attempt()}
	in := bitbucket.HookInput{
		Description: mark.Label(o.to.fullName), URL: f.hookBase + o.project.HookToken,
		Active: true, Events: webhooks.Events, Secret: randomToken(),
	}
	var created bitbucket.Hook
	id, notes, err := f.create(ctx, token, o, tether.Leftover{Part: tether.PartWebhook, Label: in.Description, Match: mark.Attempt},
		func() (string, error) {
			h, err := f.bb.CreateHook(ctx, token, o.to.workspace, o.to.uuid, in)
			created = h
			return h.UUID, err
		},
		func(ctx context.Context) (string, error) {
			hooks, err := f.bb.Hooks(ctx, token, o.to.workspace, o.to.uuid)
			for _, h := range hooks {
				// Only what this create meant to make is kept: its own
				// attempt in the marker, sending to the project's URL.
				// (secret_set is not in every answer Bitbucket gives; a
				// hook without its secret shows on the next check.)
				if m, ok := tether.ParseMarker(h.Description); ok && m == mark && h.URL == in.URL && h.Active {
					created = h
					return h.UUID, err
				}
			}
			return "", err
		})
	if err != nil {
		return nil, nil, err
	}
	return &tether.Webhook{UUID: id, URL: created.URL, Events: created.Events, Secret: in.Secret}, notes, nil
}

// create runs one create (do) and returns the id of what it made. When
// the answer is lost or unclear, find looks on the repository for exactly
// what do meant to make: found, it is adopted (with a note for the
// person); otherwise, after no answer at all, want is recorded as a
// leftover for the Cleanup to look for, since Bitbucket may still carry
// the create out.
func (f *parts) create(ctx context.Context, token string, o order, want tether.Leftover,
	do func() (string, error), find func(context.Context) (string, error)) (string, []string, error) {
	id, err := do()
	if err == nil {
		return id, nil, nil
	}
	if !ambiguous(err) {
		return "", nil, createProblem(want.Part, err, o, "")
	}
	what := tether.PartName(want.Part)
	found, ferr := find(context.WithoutCancel(ctx))
	if ferr == nil && found != "" {
		f.log.Warn("adopted a part whose create answered unclearly", "project_id", o.project.ID, "part", want.Part, "err", err)
		return found, []string{fmt.Sprintf("Bitbucket did not answer clearly (%s), but it had created the new %s; Tether found it on %s and uses it.", reason(err), what, o.to.fullName)}, nil
	}
	if !unanswered(err) && ferr == nil {
		return "", nil, createProblem(want.Part, err, o, "")
	}
	want.OrgID, want.ProjectID, want.ProjectName, want.OwnerID = o.project.OrgID, o.project.ID, o.project.Name, o.owner
	want.RepoUUID, want.FullName = o.to.uuid, o.to.fullName
	want.Why = "Bitbucket may have created it after Tether stopped waiting"
	want.NextAt = f.now().Add(f.retryIn(0))
	note := fmt.Sprintf("If Bitbucket creates the %s after all, Tether removes it: it looks again over the next day, and the Audit log says what it found.", what)
	if aerr := f.store.AddLeftovers(context.WithoutCancel(ctx), []tether.Leftover{want}); aerr != nil {
		f.log.Error("record an unanswered create", "project_id", o.project.ID, "err", aerr)
		note = fmt.Sprintf("Bitbucket may still create the %s: look for %q on %s and remove it there.", what, want.Label, o.to.fullName)
	}
	return "", nil, createProblem(want.Part, err, o, note)
}

// leftover is a part of o's project on pl that Tether lets go of. A
// deploy key's label is its fingerprint, which is also what its removal
// checks the key at remoteID against (Match).
func (f *parts) leftover(o order, pl place, part, remoteID, label, why string) tether.Leftover {
	l := tether.Leftover{OrgID: o.project.OrgID, ProjectID: o.project.ID, ProjectName: o.project.Name, OwnerID: o.owner,
		RepoUUID: pl.uuid, FullName: pl.fullName, Part: part, RemoteID: remoteID, Label: label, Why: why, NextAt: f.now()}
	if part == tether.PartDeployKey {
		l.Match = label
	}
	return l
}

// letGo removes leftovers from Bitbucket and returns, for the person,
// what remains there. recorded says the leftovers are in the store (they
// are settled when gone, retried later when not); otherwise those that
// remain are recorded now. quiet are leftovers whose removal needs no
// audit entry of its own (the operation's entry says it).
func (f *parts) letGo(ctx context.Context, token string, o order, ls []tether.Leftover, recorded bool, quiet ...tether.Leftover) []string {
	var left []string
	for _, l := range ls {
		gone, err := f.remove(ctx, token, l)
		if gone {
			var entries []tether.Audit
			if o.auditRemovals || !slices.ContainsFunc(quiet, func(q tether.Leftover) bool { return q.Part == l.Part && sameRemote(q, l) }) {
				entries = append(entries, removedEntry(l, o.actor))
			}
			// A part undone after a failure was never recorded: the
			// failed operation's message says it all.
			if recorded {
				if err := f.store.SettleLeftover(ctx, l, entries...); err != nil {
					f.log.Error("settle leftover", "project_id", l.ProjectID, "err", err)
				}
			}
			continue
		}
		left = append(left, f.stays(ctx, o, l, recorded, err))
	}
	return left
}

// stays records that l is still on Bitbucket after a failed attempt (err;
// nil for an unanswered create not found yet) — a retry for the Cleanup
// and an audit entry — and says so for the person.
func (f *parts) stays(ctx context.Context, o order, l tether.Leftover, recorded bool, err error) string {
	why := reason(err)
	if err == nil {
		why = "Bitbucket has not shown it yet"
	}
	entry := tether.Audit{OrgID: l.OrgID, ActorID: o.actor, ProjectID: l.ProjectID, ProjectName: l.ProjectName,
		Action: "left on Bitbucket", Detail: fmt.Sprintf("%s on %s: %s; Tether tries again", l.Name(), l.FullName, why)}
	var serr error
	if recorded {
		serr = f.store.RetryLeftover(ctx, l, f.now().Add(f.retryIn(l.Attempts)), entry)
	} else {
		l.NextAt = f.now().Add(f.retryIn(0))
		serr = f.store.AddLeftovers(ctx, []tether.Leftover{l}, entry)
	}
	if serr != nil {
		f.log.Error("record leftover", "project_id", l.ProjectID, "err", serr)
	}
	name := l.Name()
	if l.RemoteID != "" {
		name = o.its + " " + name // a part this change let go of; a create never answered names itself
	}
	return fmt.Sprintf("%s from %s yet (%s)", name, l.FullName, why)
}

func sameRemote(a, b tether.Leftover) bool {
	if a.Part == tether.PartWebhook {
		return tether.NormalizeHookUUID(a.RemoteID) == tether.NormalizeHookUUID(b.RemoteID)
	}
	return a.RemoteID == b.RemoteID
}

// removedEntry is the audit entry for a leftover Bitbucket confirmed gone.
func removedEntry(l tether.Leftover, actor int64) tether.Audit {
	return tether.Audit{OrgID: l.OrgID, ActorID: actor, ProjectID: l.ProjectID, ProjectName: l.ProjectName,
		Action: tether.PartName(l.Part) + " removed", Detail: fmt.Sprintf("%s from %s (%s)", l.Name(), l.FullName, l.Why)}
}

// remove takes one leftover off its repository, by its id or uuid, or —
// for a create that never answered — by finding what it would have made
// (its fingerprint, or the attempt in its marker). gone is true once
// Bitbucket confirms it is not there: deleted now, already gone, or the
// repository itself gone. A repository that moved is followed by its
// UUID. (false, nil) is an unanswered create not found (yet).
func (f *parts) remove(ctx context.Context, token string, l tether.Leftover) (bool, error) {
	pl := leftoverPlace(l)
	gone, err := f.removeAt(ctx, token, pl, l)
	if !bitbucket.IsNotFound(err) && !bitbucket.IsMoved(err) {
		return gone, err
	}
	// Not where it was: the part is gone, or the repository moved.
	repo, lerr := f.bb.RepositoryByUUID(ctx, token, pl.workspace, pl.uuid)
	switch {
	case bitbucket.IsNotFound(lerr):
		return true, nil // the repository is gone, and the part with it
	case lerr != nil:
		return false, lerr
	case strings.EqualFold(repo.Workspace.Slug, pl.workspace) && bitbucket.IsNotFound(err):
		return true, nil
	}
	gone, err = f.removeAt(ctx, token, repoPlace(repo), l)
	if bitbucket.IsNotFound(err) {
		return true, nil
	}
	return gone, err
}

func (f *parts) removeAt(ctx context.Context, token string, pl place, l tether.Leftover) (bool, error) {
	if l.RemoteID != "" {
		var err error
		if l.Part == tether.PartWebhook {
			err = f.bb.DeleteHook(ctx, token, pl.workspace, pl.uuid, l.RemoteID)
		} else {
			id, _ := strconv.Atoi(l.RemoteID)
			if l.Match != "" {
				// A key id names whatever key holds it now (the demo's
				// Bitbucket numbers keys from 1 again after a restart):
				// only the key Tether let go of is removed, never one
				// that took its id since — a new key of Tether's or
				// somebody else's. Its absence means it is gone.
				k, err := f.bb.DeployKey(ctx, token, pl.workspace, pl.uuid, id)
				if err != nil {
					return false, err
				}
				if deploykeys.Fingerprint(k.Key) != l.Match {
					return true, nil
				}
			}
			err = f.bb.DeleteDeployKey(ctx, token, pl.workspace, pl.uuid, id)
		}
		return err == nil, err
	}
	ids, err := f.findLeft(ctx, token, pl, l)
	if err != nil || len(ids) == 0 {
		return false, err
	}
	for _, id := range ids {
		found := l
		found.RemoteID = id
		if _, err := f.removeAt(ctx, token, pl, found); err != nil && !bitbucket.IsNotFound(err) {
			return false, err
		}
	}
	return true, nil
}

// findLeft lists the repository's keys or hooks and returns the ids of
// those an unanswered create of l made.
func (f *parts) findLeft(ctx context.Context, token string, pl place, l tether.Leftover) ([]string, error) {
	var ids []string
	if l.Part == tether.PartWebhook {
		hooks, err := f.bb.Hooks(ctx, token, pl.workspace, pl.uuid)
		for _, h := range hooks {
			if m, ok := tether.ParseMarker(h.Description); ok && m.Instance == f.instance && m.ProjectID == l.ProjectID && m.Attempt == l.Match {
				ids = append(ids, h.UUID)
			}
		}
		return ids, err
	}
	keys, err := f.bb.DeployKeys(ctx, token, pl.workspace, pl.uuid)
	for _, k := range keys {
		if deploykeys.Fingerprint(k.Key) == l.Match {
			ids = append(ids, strconv.Itoa(k.ID))
		}
	}
	return ids, err
}

// unanswered reports a request that got no answer at all — a timeout, a
// cut connection: Bitbucket may still carry it out.
func unanswered(err error) bool {
	var be *bitbucket.Error
	var inc *bitbucket.IncompleteError
	if _, deferred := bitbucket.Deferred(err); deferred || errors.As(err, &be) || errors.As(err, &inc) || bitbucket.IsMoved(err) {
		return false
	}
	return bitbucket.IsTransient(err)
}

// ambiguous reports a create whose answer does not say whether it was
// carried out: none came, a 5xx, or a 2xx that names nothing.
func ambiguous(err error) bool {
	var be *bitbucket.Error
	var inc *bitbucket.IncompleteError
	return unanswered(err) || errors.As(err, &inc) || errors.As(err, &be) && be.Status >= 500
}

// reason says in a few words why a request to Bitbucket did not do it.
func reason(err error) string {
	var be *bitbucket.Error
	var inc *bitbucket.IncompleteError
	switch {
	case errors.Is(err, connections.ErrNotConnected):
		return "the Bitbucket connection is Not Connected"
	case bitbucket.IsMoved(err):
		return "Bitbucket redirected the request: the repository was moved or renamed"
	case errors.As(err, &inc):
		return "Bitbucket's answer did not name what it created"
	case errors.As(err, &be):
		return fmt.Sprintf("Bitbucket answered %d %s", be.Status, http.StatusText(be.Status))
	}
	if until, deferred := bitbucket.Deferred(err); deferred {
		return "the connection's API budget is spent until " + bitbucket.WaitEnd(until)
	}
	if unanswered(err) {
		return "Bitbucket did not answer in time"
	}
	return "Tether could not ask Bitbucket"
}

// remains tells the person what is left on Bitbucket, or "".
func remains(left []string) string {
	switch len(left) {
	case 0:
		return ""
	case 1:
		return "Tether could not remove " + left[0] + ". It tries again over the next day (the Audit log says how it went); you can also remove it in the repository settings on Bitbucket."
	}
	return "Tether could not remove " + strings.Join(left[:len(left)-1], ", ") + " and " + left[len(left)-1] +
		". It tries again over the next day (the Audit log says how it went); you can also remove them in the repository settings on Bitbucket."
}

// createProblem explains a create that failed; keep (from o) and note say
// what that left.
func createProblem(part string, err error, o order, note string) error {
	if bitbucket.IsUnauthorized(err) {
		return err // connections.Do refreshes the token and tries again
	}
	what, repo := tether.PartName(part), o.to.fullName
	tail := strings.TrimSpace(o.keep + " " + note)
	var be *bitbucket.Error
	var inc *bitbucket.IncompleteError
	switch {
	case part == tether.PartDeployKey && bitbucket.IsForbidden(err) && o.keyRefused != nil:
		return o.keyRefused
	case len(bitbucket.MissingScopes(err)) > 0:
		names := strings.Join(bitbucket.MissingScopes(err), ", ")
		return problem.Grant(problem.Forbidden, err, "The Bitbucket grant lacks the %s permission (scope), so Tether cannot create the %s on %s. %s Grant access again.", names, what, repo, tail)
	case part == tether.PartWebhook && errors.As(err, &be) && be.FieldReason("url") != "":
		return problem.Wrap(problem.Unavailable, err, "Bitbucket refused the webhook URL Tether gave it (url: %s) on %s. The URL is Tether's public URL (TETHER_PUBLIC_URL) and must be one Bitbucket accepts and can reach. %s", be.FieldReason("url"), repo, tail)
	case bitbucket.IsForbidden(err):
		return problem.New(problem.Forbidden, "Admin rights on %s are needed to create its %s. %s", repo, what, tail)
	case bitbucket.IsMoved(err):
		return problem.Wrap(problem.Conflict, err, "Bitbucket answered that %s was moved or renamed, so Tether created no %s there. %s Check where the repository is now (Update URL), then try again.", repo, what, tail)
	case errors.As(err, &inc):
		return problem.Wrap(problem.Unavailable, err, "Bitbucket's answer did not say which %s it created on %s, and Tether found none there. %s", what, repo, tail)
	case unanswered(err):
		return problem.Wrap(problem.Unavailable, err, "Bitbucket did not answer in time when Tether created the %s on %s, and Tether could not find it there. %s", what, repo, tail)
	case errors.As(err, &be) && be.Status >= 500:
		return problem.Wrap(problem.Unavailable, err, "Bitbucket answered %d when Tether created the %s on %s, and it is not there. %s", be.Status, what, repo, tail)
	case errors.As(err, &be) && be.Status != 429:
		return problem.Wrap(problem.Unavailable, err, "Bitbucket refused to create the %s on %s: %s. %s", what, repo, cmp.Or(be.Reason(), fmt.Sprint(be.Status)), tail)
	}
	return bitbucketProblem(err, "create the "+what+" on "+repo)
}
