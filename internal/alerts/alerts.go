// Package alerts tells people when a project breaks and when it recovers.
// It learns of transitions only from what Tether records — the health rows
// of each project's deploy key and webhook, and the status of the
// Bitbucket connection backing it — and keeps its own durable incidents, so
// a restart neither repeats nor loses an alert. An incident opens when a
// subject is recorded invalid (never for "could not check"), alerts once,
// reminds at most daily while it stays open, and closes with a recovery
// notice when the subject is recorded valid again.
//
// Alerts go to the channels an organization's admins set: e-mail over SMTP
// (STARTTLS) to the admins and optionally the project's backer, and
// Slack-compatible webhooks signed with HMAC-SHA256 (see Sign). Deliveries
// are durable and retried with backoff; admin-typed URLs are reached only
// at public addresses, checked at connect time. In demo mode nothing is
// sent: the Outbox shows what would have been.
package alerts

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"tether/internal/problem"
	"tether/internal/tether"
)

// Store is the part of the database alerts use.
type Store interface {
	Watch(ctx context.Context) ([]tether.Watched, error)
	OpenIncidents(ctx context.Context) ([]tether.Incident, error)
	OpenIncident(ctx context.Context, inc tether.Incident, alert tether.Alert, audit ...tether.Audit) (bool, error)
	CloseIncident(ctx context.Context, incidentID int64, alert tether.Alert, check *tether.RecoveryCheck, audit ...tether.Audit) (bool, error)
	RemindIncident(ctx context.Context, incidentID int64, before time.Time, alert tether.Alert, audit ...tether.Audit) (bool, error)
	CreateAlert(ctx context.Context, alert tether.Alert, audit ...tether.Audit) (tether.Alert, error)
	AlertChannels(ctx context.Context, orgID int64) ([]tether.AlertChannel, error)
	AlertChannel(ctx context.Context, orgID, id int64) (tether.AlertChannel, error)
	CreateAlertChannel(ctx context.Context, c tether.AlertChannel, actorID int64, a tether.Audit) (tether.AlertChannel, error)
	DeleteAlertChannel(ctx context.Context, orgID, id int64, a tether.Audit) error
	DueAlertDeliveries(ctx context.Context, now time.Time, limit int) ([]tether.OutgoingAlert, error)
	MarkAlertSent(ctx context.Context, deliveryID, channelID int64, audit ...tether.Audit) error
	MarkAlertFailed(ctx context.Context, deliveryID, channelID int64, message string, next time.Time) error
	MarkChannelTested(ctx context.Context, channelID int64, message string) error
	Outbox(ctx context.Context, orgID int64, limit int) ([]tether.Alert, error)
	Members(ctx context.Context, orgID int64) ([]tether.Member, error)
	UserByID(ctx context.Context, id int64) (tether.User, error)
}

// Config is how alerts reach people.
type Config struct {
	PublicURL string // links in messages point at the project pages under it
	Demo      bool   // record in the Outbox, never send
	SMTP      SMTP   // zero Host: no e-mail
	// From is the sender of e-mails, e.g. "Tether <tether@ci.example.com>".
	From string
	// AllowPrivate lets webhooks reach loopback, private and link-local
	// addresses (TETHER_ALERTS_ALLOW_PRIVATE=true, for on-premises chat).
	AllowPrivate bool
}

// SMTP is the mail server alerts are sent through, from TETHER_SMTP_URL.
type SMTP struct {
	Host     string
	Port     int
	Username string
	Password string
	// ImplicitTLS: smtps:// (TLS from the first byte, usually port 465);
	// otherwise smtp:// upgrades with STARTTLS, which is required.
	ImplicitTLS bool
	// RootCAs, when set, are trusted for the server's certificate instead
	// of the system's (TETHER_SMTP_CA_FILE).
	RootCAs *x509.CertPool
}

// ParseSMTPURL reads smtp://user:pass@host:587 (STARTTLS) or
// smtps://user:pass@host:465 (implicit TLS); the port defaults to 587 and
// 465. caFile, when not empty, is a PEM file of CA certificates to trust
// for the server. Errors never repeat the password.
func ParseSMTPURL(raw, caFile string) (SMTP, error) {
	if raw == "" {
		return SMTP{}, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return SMTP{}, errors.New("TETHER_SMTP_URL is not a URL (smtp://user:password@host:587)")
	}
	s := SMTP{Host: u.Hostname()}
	switch u.Scheme {
	case "smtp":
		s.Port = 587
	case "smtps":
		s.Port, s.ImplicitTLS = 465, true
	default:
		return SMTP{}, fmt.Errorf("TETHER_SMTP_URL must start with smtp:// or smtps://, got %q", u.Scheme+"://")
	}
	if s.Host == "" {
		return SMTP{}, errors.New("TETHER_SMTP_URL has no host (smtp://user:password@host:587)")
	}
	if p := u.Port(); p != "" {
		if s.Port, err = strconv.Atoi(p); err != nil || s.Port < 1 || s.Port > 65535 {
			return SMTP{}, fmt.Errorf("TETHER_SMTP_URL has an invalid port %q", p)
		}
	}
	if u.User != nil {
		s.Username = u.User.Username()
		s.Password, _ = u.User.Password()
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return SMTP{}, fmt.Errorf("TETHER_SMTP_CA_FILE: %w", err)
		}
		s.RootCAs = x509.NewCertPool()
		if !s.RootCAs.AppendCertsFromPEM(pem) {
			return SMTP{}, errors.New("TETHER_SMTP_CA_FILE holds no PEM certificate")
		}
	}
	return s, nil
}

// Service composes, records and delivers alerts.
type Service struct {
	// Every is how often the watcher reads what Tether recorded.
	Every time.Duration
	// SendEvery is how often due deliveries are attempted.
	SendEvery time.Duration
	// Reminder is how long an incident stays open before it is alerted
	// again; a day, so at most one reminder a day.
	Reminder time.Duration
	// Backoff is the wait before each retry of a failed delivery; after
	// the last one it is given up.
	Backoff []time.Duration
	// Timeout bounds one delivery attempt.
	Timeout time.Duration

	log   *slog.Logger
	store Store
	cfg   Config
	guard guard
	now   func() time.Time
}

// New returns the alerts service; Run starts its watcher and sender.
func New(log *slog.Logger, store Store, cfg Config) *Service {
	return &Service{
		Every:     5 * time.Second,
		SendEvery: 5 * time.Second,
		Reminder:  24 * time.Hour,
		Backoff:   []time.Duration{30 * time.Second, 2 * time.Minute, 10 * time.Minute, 30 * time.Minute, 2 * time.Hour},
		Timeout:   20 * time.Second,
		log:       log, store: store, cfg: cfg,
		guard: guard{allowPrivate: cfg.AllowPrivate},
		now:   time.Now,
	}
}

// Run watches and sends until ctx is done, and returns when both stopped.
func (s *Service) Run(ctx context.Context) {
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		s.loop(ctx, s.SendEvery, "send alerts", s.SendDue)
	}()
	s.loop(ctx, s.Every, "watch for incidents", s.Watch)
	<-sent
}

func (s *Service) loop(ctx context.Context, every time.Duration, what string, fn func(context.Context) error) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("alerts: "+what, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Channel is a channel as the Notifications section shows it: nothing
// secret, only what lets an admin recognise it.
type Channel struct {
	ID          int64
	Kind        string
	Label       string // "E-mail" or "Webhook"
	Recipients  string // who gets it now: e-mail addresses, or the masked URL
	EmailBacker bool
	SecretHint  string // webhook: the secret's last characters
	LastSentAt  time.Time
	LastError   string
	LastErrorAt time.Time
}

// Settings is what the Notifications section needs besides the channels.
type Settings struct {
	Channels       []Channel
	SMTPConfigured bool
	Demo           bool
	AllowPrivate   bool
}

// Settings lists an organization's channels, masked.
func (s *Service) Settings(ctx context.Context, orgID int64) (Settings, error) {
	chans, err := s.store.AlertChannels(ctx, orgID)
	if err != nil {
		return Settings{}, err
	}
	out := Settings{SMTPConfigured: s.cfg.SMTP.Host != "", Demo: s.cfg.Demo, AllowPrivate: s.cfg.AllowPrivate}
	for _, c := range chans {
		ch := Channel{ID: c.ID, Kind: c.Kind, EmailBacker: c.EmailBacker, LastSentAt: c.LastSentAt, LastError: c.LastError, LastErrorAt: c.LastErrorAt}
		switch c.Kind {
		case tether.ChannelEmail:
			ch.Label = "E-mail"
			to, err := s.recipients(ctx, orgID, c, 0)
			if err != nil {
				return Settings{}, err
			}
			ch.Recipients = strings.Join(to, ", ")
		case tether.ChannelWebhook:
			ch.Label, ch.Recipients, ch.SecretHint = "Webhook", MaskURL(c.URL), MaskSecret(c.Secret)
		}
		out.Channels = append(out.Channels, ch)
	}
	return out, nil
}

// Actor is the admin changing the channels.
type Actor struct {
	UserID, OrgID int64
}

func (a Actor) audit(action, detail string) tether.Audit {
	return tether.Audit{OrgID: a.OrgID, ActorID: a.UserID, Action: action, Detail: detail}
}

// AddEmail sets up the organization's e-mail channel: alerts go to its
// admins and, with backer, to the person backing the project. Refused
// without TETHER_SMTP_URL (outside demo mode) or when one exists.
func (s *Service) AddEmail(ctx context.Context, a Actor, backer bool) error {
	if s.cfg.SMTP.Host == "" && !s.cfg.Demo {
		return problem.New(problem.Conflict, "E-mail needs a mail server: set TETHER_SMTP_URL (smtp://user:password@host:587) and restart Tether.")
	}
	chans, err := s.store.AlertChannels(ctx, a.OrgID)
	if err != nil {
		return err
	}
	for _, c := range chans {
		if c.Kind == tether.ChannelEmail {
			return problem.New(problem.Conflict, "E-mail is already on. Remove it first to change who gets it.")
		}
	}
	detail := "to the admins"
	if backer {
		detail += " and the person backing the project"
	}
	_, err = s.store.CreateAlertChannel(ctx, tether.AlertChannel{OrgID: a.OrgID, Kind: tether.ChannelEmail, EmailBacker: backer}, a.UserID,
		a.audit("alert channel added", "e-mail "+detail))
	return err
}

// Limits of what an admin may type.
const (
	maxURL          = 2048
	minSecret       = 16
	maxSecret       = 200
	maxChannels     = 10
	generatedSecret = 32 // bytes, before base64
)

// AddWebhook adds a Slack-compatible incoming-webhook URL. secret signs
// the deliveries; when empty Tether generates one and returns it, to be
// shown once. Field errors name "url" or "secret".
func (s *Service) AddWebhook(ctx context.Context, a Actor, rawURL, secret string) (string, error) {
	rawURL, secret = strings.TrimSpace(rawURL), strings.TrimSpace(secret)
	if msg := s.checkURL(rawURL); msg != "" {
		return "", problem.Field("url", "%s", msg)
	}
	generated := ""
	switch {
	case secret == "":
		b := make([]byte, generatedSecret)
		rand.Read(b)
		secret = base64.RawURLEncoding.EncodeToString(b)
		generated = secret
	case len(secret) < minSecret:
		return "", problem.Field("secret", "Use at least %d characters, or leave it empty and Tether makes one.", minSecret)
	case len(secret) > maxSecret:
		return "", problem.Field("secret", "Keep the secret under %d characters.", maxSecret)
	}
	chans, err := s.store.AlertChannels(ctx, a.OrgID)
	if err != nil {
		return "", err
	}
	if len(chans) >= maxChannels {
		return "", problem.New(problem.Conflict, "An organization has %d channels at most; remove one first.", maxChannels)
	}
	for _, c := range chans {
		if c.Kind == tether.ChannelWebhook && c.URL == rawURL {
			// Twice, every alert would arrive twice.
			return "", problem.Field("url", "Alerts already go to this webhook. To change its secret, remove it and add it again.")
		}
	}
	_, err = s.store.CreateAlertChannel(ctx, tether.AlertChannel{OrgID: a.OrgID, Kind: tether.ChannelWebhook, URL: rawURL, Secret: secret}, a.UserID,
		a.audit("alert channel added", "webhook "+MaskURL(rawURL)))
	return generated, err
}

// checkURL says what is wrong with an admin-typed webhook URL ("" if
// nothing). The address it resolves to is checked again at every
// connection.
func (s *Service) checkURL(raw string) string {
	if raw == "" {
		return "Paste the webhook URL your chat gave you (https://…)."
	}
	if len(raw) > maxURL {
		return fmt.Sprintf("Keep the URL under %d characters.", maxURL)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Hostname() == "" {
		return "That is not a URL: paste the whole https://… address."
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && s.cfg.AllowPrivate:
	case u.Scheme == "http":
		return "Use an https:// URL: alerts must not travel in clear text."
	default:
		return "Use an https:// URL."
	}
	if s.cfg.AllowPrivate {
		return ""
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return "Tether does not send alerts to this machine. Set TETHER_ALERTS_ALLOW_PRIVATE=true for a chat server on your own network."
	}
	if ip, err := netip.ParseAddr(host); err == nil && !Public(ip) {
		return "That address is not on the public Internet. Set TETHER_ALERTS_ALLOW_PRIVATE=true for a chat server on your own network."
	}
	return ""
}

// Remove deletes a channel of the organization.
func (s *Service) Remove(ctx context.Context, a Actor, channelID int64) error {
	c, err := s.store.AlertChannel(ctx, a.OrgID, channelID)
	if errors.Is(err, tether.ErrNotFound) {
		return problem.New(problem.NotFound, "There is no such channel.")
	}
	if err != nil {
		return err
	}
	label := "e-mail"
	if c.Kind == tether.ChannelWebhook {
		label = "webhook " + MaskURL(c.URL)
	}
	return s.store.DeleteAlertChannel(ctx, a.OrgID, channelID, a.audit("alert channel removed", label))
}

// Outbox returns the organization's latest alerts with their deliveries.
func (s *Service) Outbox(ctx context.Context, orgID int64) ([]tether.Alert, error) {
	return s.store.Outbox(ctx, orgID, 100)
}

// MaskURL shows a URL as much as recognising it needs: scheme, host and the
// path's first segment and last four characters; tokens in the path and the
// query stay hidden.
func MaskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(unreadable URL)"
	}
	out := u.Scheme + "://" + u.Host
	p := strings.Trim(u.EscapedPath(), "/")
	if p == "" {
		return out + "/"
	}
	first, _, more := strings.Cut(p, "/")
	if !more && len(p) <= 8 {
		return out + "/" + p
	}
	tail := p
	if len(tail) > 4 {
		tail = tail[len(tail)-4:]
	}
	if more {
		return out + "/" + first + "/…" + tail
	}
	return out + "/…" + tail
}

// MaskSecret shows the last four characters of a secret.
func MaskSecret(secret string) string {
	if len(secret) <= 8 {
		return "••••"
	}
	return "••••" + secret[len(secret)-4:]
}

var errNoChannel = problem.New(problem.NotFound, "There is no such channel.")
