package alerts

import (
	"context"
	"fmt"
	"strings"
	"time"

	"tether/internal/tether"
)

// subjects are what an incident can be about, in the order they are read.
var subjects = []string{tether.SubjectConnection, tether.PartDeployKey, tether.PartWebhook}

// verdict is what Tether recorded about a subject.
type verdict struct {
	status         string // tether.Valid | tether.Invalid | tether.Unknown
	reason, detail string
}

// judge reads the recorded state of one subject of a project. A part found
// invalid because the connection is gone (OAuth permissions revoked) is
// the connection's incident, not its own: one cause, one alert.
func judge(w tether.Watched, subject string) verdict {
	if subject == tether.SubjectConnection {
		switch w.ConnectionStatus {
		case tether.Connected:
			return verdict{status: tether.Valid}
		case tether.NotConnected:
			reason := w.ConnectionReason
			if reason == "" {
				reason = "Not Connected"
			}
			return verdict{tether.Invalid, reason, fmt.Sprintf("%s's Bitbucket connection is Not Connected (%s), so Tether cannot act on %s. %s must grant access again on their account page, or an admin re-homes the project.",
				w.Project.OwnerName, reason, w.Project.FullName, w.Project.OwnerName)}
		}
		return verdict{tether.Invalid, "no Bitbucket connection", fmt.Sprintf("%s has no Bitbucket connection, so Tether cannot act on %s.", w.Project.OwnerName, w.Project.FullName)}
	}
	for _, h := range w.Parts {
		if h.Part != subject {
			continue
		}
		if h.Status == tether.Invalid && h.Reason == tether.ReasonOAuthRevoked {
			return verdict{status: tether.Unknown}
		}
		return verdict{h.Status, h.Reason, h.Detail}
	}
	return verdict{status: tether.Unknown} // never checked yet
}

// Watch compares what Tether recorded with the open incidents once: it
// opens an incident (and alerts) for every subject newly invalid, closes
// those valid again (with a recovery notice, and a comparison of branch
// heads when deliveries may have been lost), and reminds of those open
// longer than Reminder since their last alert. "Could not check" changes
// nothing.
func (s *Service) Watch(ctx context.Context) error {
	watched, err := s.store.Watch(ctx)
	if err != nil {
		return err
	}
	open, err := s.store.OpenIncidents(ctx)
	if err != nil {
		return err
	}
	type key struct {
		project int64
		subject string
	}
	incidents := map[key]tether.Incident{}
	for _, i := range open {
		incidents[key{i.ProjectID, i.Subject}] = i
	}
	now := s.now()
	for _, w := range watched {
		for _, subject := range subjects {
			v := judge(w, subject)
			inc, isOpen := incidents[key{w.Project.ID, subject}]
			switch {
			case v.status == tether.Invalid && !isOpen:
				err = s.open(ctx, w.Project, subject, v)
			case v.status == tether.Valid && isOpen:
				err = s.close(ctx, w.Project, inc, now)
			case v.status == tether.Invalid && isOpen && now.Sub(inc.NotifiedAt) >= s.Reminder:
				err = s.remind(ctx, w.Project, inc, v, now)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// subjectName is how messages name a subject.
func subjectName(subject string) string {
	if subject == tether.SubjectConnection {
		return "Bitbucket connection"
	}
	return tether.PartName(subject)
}

func (s *Service) link(p tether.Project) string {
	return fmt.Sprintf("%s/projects/%d", strings.TrimRight(s.cfg.PublicURL, "/"), p.ID)
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// named is how an alert names the project: its name, and its repository
// when the name is not that already.
func named(p tether.Project) string {
	if p.FullName == "" || p.FullName == p.Name {
		return p.Name
	}
	return p.Name + " (" + p.FullName + ")"
}

func (s *Service) open(ctx context.Context, p tether.Project, subject string, v verdict) error {
	a := tether.Alert{
		OrgID: p.OrgID, ProjectID: p.ID, Kind: tether.AlertBroken, Subject: subject, ProjectName: p.Name, Link: s.link(p),
		Title: fmt.Sprintf("Tether: %s of %s is invalid — %s", subjectName(subject), p.Name, v.reason),
		Text: fmt.Sprintf("The %s of %s is invalid: %s.\n%s\nSince %s.\nOpen the project: %s",
			subjectName(subject), named(p), v.reason, v.detail, stamp(s.now()), s.link(p)),
	}
	if subject == tether.PartWebhook || subject == tether.SubjectConnection {
		a.Text += "\nPushes made while it is broken do not start workflows; once it is repaired Tether offers the ones missed."
	}
	a, audit, err := s.address(ctx, a, p)
	if err != nil {
		return err
	}
	opened, err := s.store.OpenIncident(ctx, tether.Incident{OrgID: p.OrgID, ProjectID: p.ID, Subject: subject, Reason: v.reason, Detail: v.detail}, a, audit...)
	if opened {
		s.log.Info("incident opened", "project_id", p.ID, "subject", subject, "reason", v.reason)
	}
	return err
}

func (s *Service) close(ctx context.Context, p tether.Project, inc tether.Incident, now time.Time) error {
	a := tether.Alert{
		OrgID: p.OrgID, ProjectID: p.ID, Kind: tether.AlertRecovered, Subject: inc.Subject, ProjectName: p.Name, Link: s.link(p),
		Title: fmt.Sprintf("Tether: %s of %s is valid again", subjectName(inc.Subject), p.Name),
		Text: fmt.Sprintf("The %s of %s is valid again. It was invalid for %s (%s), since %s.\nOpen the project: %s",
			subjectName(inc.Subject), named(p), since(inc.OpenedAt, now), inc.Reason, stamp(inc.OpenedAt), s.link(p)),
	}
	var check *tether.RecoveryCheck
	if inc.Subject == tether.PartWebhook || inc.Subject == tether.SubjectConnection {
		// Deliveries may have been lost while it was broken: compare the
		// branch heads with the workflows.
		check = &tether.RecoveryCheck{ProjectID: p.ID, DueAt: now,
			Why: fmt.Sprintf("the %s was invalid from %s to %s", subjectName(inc.Subject), stamp(inc.OpenedAt), stamp(now))}
		a.Text += "\nTether now compares the repository's branches with the workflows; the project page offers any pushes that were missed."
	}
	a, audit, err := s.address(ctx, a, p)
	if err != nil {
		return err
	}
	closed, err := s.store.CloseIncident(ctx, inc.ID, a, check, audit...)
	if closed {
		s.log.Info("incident closed", "project_id", p.ID, "subject", inc.Subject)
	}
	return err
}

func (s *Service) remind(ctx context.Context, p tether.Project, inc tether.Incident, v verdict, now time.Time) error {
	a := tether.Alert{
		OrgID: p.OrgID, ProjectID: p.ID, Kind: tether.AlertReminder, Subject: inc.Subject, ProjectName: p.Name, Link: s.link(p),
		Title: fmt.Sprintf("Tether: %s of %s is still invalid — %s", subjectName(inc.Subject), p.Name, v.reason),
		Text: fmt.Sprintf("Reminder: the %s of %s has been invalid for %s: %s.\n%s\nOpen the project: %s",
			subjectName(inc.Subject), named(p), since(inc.OpenedAt, now), v.reason, v.detail, s.link(p)),
	}
	a, audit, err := s.address(ctx, a, p)
	if err != nil {
		return err
	}
	_, err = s.store.RemindIncident(ctx, inc.ID, now.Add(-s.Reminder), a, audit...)
	return err
}

// since is a rough duration for people.
func since(from, to time.Time) string {
	d := to.Sub(from).Round(time.Minute)
	switch {
	case d < time.Minute:
		return "less than a minute"
	case d < time.Hour:
		return fmt.Sprintf("%d minute(s)", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%.1f hours", d.Hours())
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}
