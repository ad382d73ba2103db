package pages

import (
	"context"
	"fmt"

	"tether/internal/projects"
	"tether/internal/tether"
)

// The actions below do what a button on a project's page asks, through
// the service that owns the rule, and answer with what the page shows of
// the result, read after the action: one call per press. An action's
// refusal (a problem, shown where the person pressed) comes back as the
// error beside an answer that is still filled in; a failure to read the
// answer is returned instead of the refusal.

// CheckNow is "Check now" on a row: it runs the project's full check
// (health.CheckNow: presses in quick succession, by anyone, share one)
// and answers with the row named (tether.PartDeployKey or
// tether.PartWebhook) as the check left it.
func (r *Reader) CheckNow(ctx context.Context, p tether.Project, name string) (Part, error) {
	if err := r.health.CheckNow(ctx, p); err != nil {
		return Part{}, err
	}
	return r.Part(ctx, p, name, false)
}

// Regenerate replaces the deploy key (projects.RegenerateKey) or the
// webhook (projects.RegenerateWebhook), as name says, and answers with
// its row as stored afterwards: the new part, or the old one still in
// force when the Regenerate was refused.
func (r *Reader) Regenerate(ctx context.Context, actorID int64, p tether.Project, name string) (Part, projects.RegenerateResult, error) {
	regenerate := r.projects.RegenerateKey
	switch name {
	case tether.PartDeployKey:
	case tether.PartWebhook:
		regenerate = r.projects.RegenerateWebhook
	default:
		return Part{}, projects.RegenerateResult{}, fmt.Errorf("pages: no part %q to regenerate", name)
	}
	res, actErr := regenerate(ctx, actorID, p)
	part, err := r.Part(ctx, p, name, false)
	if err != nil {
		return part, res, err
	}
	return part, res, actErr
}

// Rehomed is the answer to Re-home: who backs the project now and, when
// the Re-home went through, both rows with the new key and hook.
type Rehomed struct {
	projects.RegenerateResult
	Project tether.Project // as stored after the Re-home; as it was when refused
	Backing projects.Backing
	Parts   []Part // the deploy key, then the webhook; nil when refused
}

// Rehome is "Re-home to me" (projects.Rehome): v's Bitbucket connection
// backs the project from now on. It answers with the Backing section as
// v sees it afterwards and, on success, both rows.
func (r *Reader) Rehome(ctx context.Context, p tether.Project, v Viewer) (Rehomed, error) {
	res, actErr := r.projects.Rehome(ctx, v.UserID, p)
	out := Rehomed{RegenerateResult: res, Project: p}
	var err error
	if actErr == nil {
		out.Project = res.Project
		if out.Parts, err = r.parts(ctx, out.Project, false); err != nil {
			return out, err
		}
	}
	if out.Backing, err = r.projects.BackingOf(ctx, out.Project, v.UserID, v.Admin); err != nil {
		return out, err
	}
	return out, actErr
}

// Changed is the answer to Change and Update URL: the project as stored
// afterwards, the moved banner's URL for it and, when the project changed,
// both rows as checked again.
type Changed struct {
	projects.ChangeResult
	Project  tether.Project // as stored after the change; as it was when nothing changed
	MovedURL string         // see Project.MovedURL
	Parts    []Part         // the deploy key, then the webhook; nil when nothing changed
}

// ChangeRepository is Change and Update URL (projects.ChangeRepository):
// it points the project at the repository input names, switching to a
// different one only when confirmUUID is its UUID.
func (r *Reader) ChangeRepository(ctx context.Context, actorID int64, p tether.Project, input, confirmUUID string) (Changed, error) {
	res, actErr := r.projects.ChangeRepository(ctx, actorID, p, input, confirmUUID)
	out := Changed{ChangeResult: res, Project: p}
	if actErr == nil && res.Confirm == nil {
		out.Project = res.Project
		var err error
		if out.Parts, err = r.parts(ctx, out.Project, false); err != nil {
			return out, err
		}
	}
	out.MovedURL = r.projects.MovedURL(out.Project)
	return out, actErr
}

// Started is the answer to Start missed workflows: what started, and the
// Missed and activity sections as they are afterwards.
type Started struct {
	Workflows []tether.Workflow
	Missed    []tether.MissedBranch
	Activity  projects.Activity
}

// StartMissed is "Start missed workflows" (recovery.StartMissed).
func (r *Reader) StartMissed(ctx context.Context, actorID int64, p tether.Project) (Started, error) {
	var out Started
	var actErr, err error
	out.Workflows, actErr = r.recovery.StartMissed(ctx, actorID, p)
	if out.Missed, err = r.recovery.Missed(ctx, p); err != nil {
		return out, err
	}
	if out.Activity, err = r.projects.Activity(ctx, p); err != nil {
		return out, err
	}
	return out, actErr
}
