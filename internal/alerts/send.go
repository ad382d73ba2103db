package alerts

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wneessen/go-mail"

	"tether/internal/tether"
)

// Headers of a webhook delivery. A receiver verifies one by computing
// HMAC-SHA256 with the channel's secret over the timestamp, a dot and the
// raw body, comparing it (in constant time) with the hex after "sha256=" in
// SignatureHeader, and refusing timestamps more than five minutes old.
const (
	SignatureHeader = "X-Tether-Signature" // "sha256=<hex>"
	TimestampHeader = "X-Tether-Timestamp" // Unix seconds
	EventHeader     = "X-Tether-Event"     // broken | recovered | reminder | test
	DeliveryHeader  = "X-Tether-Delivery"  // the delivery's id, the same on every retry
)

// Sign returns the SignatureHeader value for a body sent at timestamp (Unix
// seconds, as sent in TimestampHeader).
func Sign(secret []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify reports whether signature is Sign's for the body at timestamp and
// the timestamp is within maxAge of now: what a receiver checks.
func Verify(secret []byte, timestamp, signature string, body []byte, now time.Time, maxAge time.Duration) bool {
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return false
	}
	if d := now.Sub(time.Unix(sec, 0)); d > maxAge || d < -maxAge {
		return false
	}
	return hmac.Equal([]byte(signature), []byte(Sign(secret, timestamp, body)))
}

// address adds one delivery per channel of the organization to a, and the
// audit entries its recording needs (in demo mode: recorded, not sent).
func (s *Service) address(ctx context.Context, a tether.Alert, p tether.Project) (tether.Alert, []tether.Audit, error) {
	chans, err := s.store.AlertChannels(ctx, a.OrgID)
	if err != nil {
		return a, nil, err
	}
	for _, c := range chans {
		d, err := s.delivery(ctx, c, p.OwnerID)
		if err != nil {
			return a, nil, err
		}
		a.Deliveries = append(a.Deliveries, d)
	}
	var audit []tether.Audit
	if s.cfg.Demo {
		audit = append(audit, tether.Audit{OrgID: a.OrgID, ProjectID: a.ProjectID, ProjectName: a.ProjectName,
			Action: "alert recorded", Detail: a.Title + " (demo mode: shown in the Outbox, not sent)"})
	}
	return a, audit, nil
}

// delivery is one channel's delivery of a new alert, with its recipients.
func (s *Service) delivery(ctx context.Context, c tether.AlertChannel, backerID int64) (tether.AlertDelivery, error) {
	d := tether.AlertDelivery{ChannelID: c.ID, ChannelKind: c.Kind, Status: tether.DeliveryPending}
	if s.cfg.Demo {
		d.Status = tether.DeliveryDemo
	}
	switch c.Kind {
	case tether.ChannelWebhook:
		d.Recipients = MaskURL(c.URL)
	case tether.ChannelEmail:
		to, err := s.recipients(ctx, c.OrgID, c, backerID)
		if err != nil {
			return d, err
		}
		d.Recipients = strings.Join(to, ", ")
		switch {
		case len(to) == 0 && !s.cfg.Demo:
			d.Status, d.LastError = tether.DeliveryFailed, "no recipient: no admin has an e-mail address"
		case s.cfg.SMTP.Host == "" && !s.cfg.Demo:
			d.Status, d.LastError = tether.DeliveryFailed, "not sent: TETHER_SMTP_URL is not set"
		}
	}
	return d, nil
}

// recipients are the e-mail addresses of the organization's admins and,
// when the channel says so, of the person backing the project (backerID;
// 0 for none), each once.
func (s *Service) recipients(ctx context.Context, orgID int64, c tether.AlertChannel, backerID int64) ([]string, error) {
	members, err := s.store.Members(ctx, orgID)
	if err != nil {
		return nil, err
	}
	var to []string
	add := func(email string) {
		if email != "" && !slices.ContainsFunc(to, func(e string) bool { return strings.EqualFold(e, email) }) {
			to = append(to, email)
		}
	}
	for _, m := range members {
		if m.Role == tether.RoleAdmin {
			add(m.Email)
		}
	}
	if c.EmailBacker && backerID != 0 {
		u, err := s.store.UserByID(ctx, backerID)
		if err != nil && !errors.Is(err, tether.ErrNotFound) {
			return nil, err
		}
		add(u.Email)
	}
	return to, nil
}

// deliveryError is a failed attempt; permanent ones are not retried.
type deliveryError struct {
	msg       string // safe to show: no URL token, no password
	permanent bool
}

func (e *deliveryError) Error() string { return e.msg }

// SendDue attempts every delivery that is due, recording the outcome: sent
// (with an audit entry), or failed and tried again after the next backoff,
// or given up after the last.
func (s *Service) SendDue(ctx context.Context) error {
	due, err := s.store.DueAlertDeliveries(ctx, s.now(), 20)
	if err != nil {
		return err
	}
	for _, o := range due {
		if ctx.Err() != nil {
			return nil
		}
		err := s.send(ctx, o.Alert, o.Delivery, o.Channel)
		if err == nil {
			a := tether.Audit{OrgID: o.Alert.OrgID, ProjectID: o.Alert.ProjectID, ProjectName: o.Alert.ProjectName,
				Action: "alert sent", Detail: o.Alert.Title + " → " + o.Delivery.Recipients}
			if err := s.store.MarkAlertSent(context.WithoutCancel(ctx), o.Delivery.ID, o.Channel.ID, a); err != nil {
				return err
			}
			continue
		}
		var de *deliveryError
		if !errors.As(err, &de) {
			de = &deliveryError{msg: "could not send"}
		}
		var next time.Time
		attempt := o.Delivery.Attempts + 1
		if !de.permanent && attempt <= len(s.Backoff) {
			next = s.now().Add(s.Backoff[attempt-1])
		}
		s.log.Warn("alert delivery failed", "alert_id", o.Alert.ID, "channel_id", o.Channel.ID, "kind", o.Channel.Kind,
			"attempt", attempt, "err", de.msg, "retry_at", next)
		if err := s.store.MarkAlertFailed(context.WithoutCancel(ctx), o.Delivery.ID, o.Channel.ID, de.msg, next); err != nil {
			return err
		}
	}
	return nil
}

// send makes one attempt to deliver a to channel c.
func (s *Service) send(ctx context.Context, a tether.Alert, d tether.AlertDelivery, c tether.AlertChannel) error {
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	switch c.Kind {
	case tether.ChannelWebhook:
		return s.postWebhook(ctx, a, d, c)
	case tether.ChannelEmail:
		to := strings.Split(d.Recipients, ", ")
		if d.Recipients == "" {
			return &deliveryError{msg: "no recipient: no admin has an e-mail address", permanent: true}
		}
		return s.sendEmail(ctx, to, a)
	}
	return &deliveryError{msg: "unknown channel kind " + c.Kind, permanent: true}
}

// payload is what a webhook receives: Slack's "text", and the same facts
// for programs under "tether".
type payload struct {
	Text   string `json:"text"`
	Tether struct {
		Kind    string `json:"kind"`
		Project string `json:"project,omitempty"`
		Subject string `json:"subject,omitempty"`
		Title   string `json:"title"`
		Link    string `json:"link,omitempty"`
		At      string `json:"at"`
	} `json:"tether"`
}

func (s *Service) postWebhook(ctx context.Context, a tether.Alert, d tether.AlertDelivery, c tether.AlertChannel) error {
	var p payload
	p.Text = a.Text
	p.Tether.Kind, p.Tether.Project, p.Tether.Subject, p.Tether.Title, p.Tether.Link = a.Kind, a.ProjectName, a.Subject, a.Title, a.Link
	p.Tether.At = a.CreatedAt.UTC().Format(time.RFC3339)
	body, err := json.Marshal(p)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return &deliveryError{msg: "the URL cannot be used", permanent: true}
	}
	ts := strconv.FormatInt(s.now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Tether-Alerts/1.0")
	req.Header.Set(EventHeader, a.Kind)
	req.Header.Set(DeliveryHeader, strconv.FormatInt(d.ID, 10))
	req.Header.Set(TimestampHeader, ts)
	req.Header.Set(SignatureHeader, Sign([]byte(c.Secret), ts, body))
	resp, err := s.guard.client(s.Timeout).Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text repeats the URL, token and all
		}
		var refused *RefusedError
		if errors.As(err, &refused) {
			return &deliveryError{msg: refused.Error(), permanent: true}
		}
		return &deliveryError{msg: "could not reach " + MaskURL(c.URL) + ": " + redact(err.Error(), c.URL, c.Secret)}
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return &deliveryError{msg: fmt.Sprintf("%s answered %d", MaskURL(c.URL), resp.StatusCode)}
	}
	return &deliveryError{msg: fmt.Sprintf("%s answered %d; check the URL", MaskURL(c.URL), resp.StatusCode), permanent: true}
}

// redact removes the URL (and its path, which often is the token) and the
// secret from an error message.
func redact(msg string, rawURL, secret string) string {
	for _, s := range []string{rawURL, secret} {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	if u, err := url.Parse(rawURL); err == nil && len(u.Path) > 1 {
		msg = strings.ReplaceAll(msg, u.Path, "/[redacted]")
	}
	return msg
}

func (s *Service) sendEmail(ctx context.Context, to []string, a tether.Alert) error {
	smtp := s.cfg.SMTP
	if smtp.Host == "" {
		return &deliveryError{msg: "not sent: TETHER_SMTP_URL is not set", permanent: true}
	}
	m := mail.NewMsg()
	if err := m.From(s.cfg.From); err != nil {
		return &deliveryError{msg: "TETHER_SMTP_FROM is not an address", permanent: true}
	}
	if err := m.To(to...); err != nil {
		return &deliveryError{msg: "an admin's e-mail address is not valid", permanent: true}
	}
	m.Subject(a.Title)
	m.SetDate()
	m.SetMessageID()
	m.SetGenHeader("Auto-Submitted", "auto-generated")
	m.SetBodyString(mail.TypeTextPlain, a.Text+"\n\n-- \nTether · "+s.cfg.PublicURL+"\n")
	opts := []mail.Option{
		mail.WithPort(smtp.Port),
		mail.WithTimeout(s.Timeout),
		mail.WithTLSConfig(&tls.Config{ServerName: smtp.Host, RootCAs: smtp.RootCAs, MinVersion: tls.VersionTLS12}),
	}
	if smtp.ImplicitTLS {
		opts = append(opts, mail.WithSSL())
	} else {
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	}
	if smtp.Username != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover), mail.WithUsername(smtp.Username), mail.WithPassword(smtp.Password))
	}
	c, err := mail.NewClient(smtp.Host, opts...)
	if err != nil {
		return &deliveryError{msg: "the mail settings cannot be used: " + redact(err.Error(), "", smtp.Password), permanent: true}
	}
	if err := c.DialAndSendWithContext(ctx, m); err != nil {
		return &deliveryError{msg: "the mail server did not take it: " + redact(err.Error(), "", smtp.Password)}
	}
	return nil
}

// TestResult is what "Send test" did.
type TestResult struct {
	Demo  bool   // recorded in the Outbox only
	Error string // why it failed, safe to show; "" when it was sent
}

// SendTest sends a test message to one channel of the organization now and
// records it in the Outbox and the audit log (in demo mode: records it
// only).
func (s *Service) SendTest(ctx context.Context, a Actor, orgName string, channelID int64) (TestResult, error) {
	c, err := s.store.AlertChannel(ctx, a.OrgID, channelID)
	if errors.Is(err, tether.ErrNotFound) {
		return TestResult{}, errNoChannel
	}
	if err != nil {
		return TestResult{}, err
	}
	alert := tether.Alert{OrgID: a.OrgID, Kind: tether.AlertTest, Link: strings.TrimRight(s.cfg.PublicURL, "/") + "/team",
		Title: "Tether: test message for " + orgName,
		Text:  fmt.Sprintf("This is a test from Tether. Alerts about %s's projects — a deploy key, webhook or Bitbucket connection that breaks, and when it recovers — arrive here.", orgName),
	}
	alert.CreatedAt = s.now()
	d, err := s.delivery(ctx, c, 0)
	if err != nil {
		return TestResult{}, err
	}
	res := TestResult{Demo: s.cfg.Demo}
	audit := tether.Audit{OrgID: a.OrgID, ActorID: a.UserID, Action: "test alert sent", Detail: d.Recipients}
	switch {
	case s.cfg.Demo:
		audit.Action, audit.Detail = "test alert recorded", d.Recipients+" (demo mode: shown in the Outbox, not sent)"
	case d.Status == tether.DeliveryFailed:
		res.Error = d.LastError
	default:
		d.Attempts = 1
		if err := s.send(ctx, alert, d, c); err != nil {
			var de *deliveryError
			res.Error = "could not send"
			if errors.As(err, &de) {
				res.Error = de.msg
			}
			d.Status, d.LastError = tether.DeliveryFailed, res.Error
		} else {
			d.Status, d.SentAt = tether.DeliverySent, s.now()
		}
		if err := s.store.MarkChannelTested(ctx, c.ID, res.Error); err != nil {
			return res, err
		}
	}
	if res.Error != "" {
		audit.Action, audit.Detail = "test alert failed", d.Recipients+": "+res.Error
	}
	alert.Deliveries = []tether.AlertDelivery{d}
	_, err = s.store.CreateAlert(ctx, alert, audit)
	return res, err
}
