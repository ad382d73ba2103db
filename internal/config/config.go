// Package config reads Tether's settings from flags and their environment
// variable equivalents (a flag wins over its variable). Every setting has a
// default, so a bare `go run .` starts the demo against the built-in
// Bitbucket emulator.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Config is everything Tether needs to start.
type Config struct {
	Addr                  string // TETHER_ADDR
	PublicURL             string // TETHER_PUBLIC_URL
	DataDir               string // TETHER_DATA_DIR
	SecretKey             string // TETHER_SECRET_KEY
	BitbucketClientID     string // BITBUCKET_CLIENT_ID
	BitbucketClientSecret string // BITBUCKET_CLIENT_SECRET
	BitbucketURL          string // BITBUCKET_URL
	BitbucketAPIURL       string // BITBUCKET_API_URL
	BitbucketSSHAddr      string // BITBUCKET_SSH_ADDR
	BitbucketSSHHostKeys  string // BITBUCKET_SSH_HOST_KEYS
	SMTPURL               string // TETHER_SMTP_URL
	SMTPFrom              string // TETHER_SMTP_FROM
	SMTPCAFile            string // TETHER_SMTP_CA_FILE
	AlertsAllowPrivate    string // TETHER_ALERTS_ALLOW_PRIVATE: "true" or "false"
	BitbucketBudget       string // TETHER_BITBUCKET_BUDGET, as given
	MetricsToken          string // TETHER_METRICS_TOKEN

	// TrustedProxies lists the reverse proxies (addresses or CIDR
	// prefixes, comma-separated) whose X-Forwarded-For Tether believes
	// when it throttles by client address; empty means the peer address
	// is the client's. TETHER_TRUSTED_PROXIES
	TrustedProxies string
	// RetentionDays is how many days accepted deliveries and workflows
	// are kept. TETHER_RETENTION_DAYS
	RetentionDays int
	// RetentionPerProject is how many of a project's most recent
	// deliveries, and of its workflows, are kept whatever their age.
	// TETHER_RETENTION_PER_PROJECT
	RetentionPerProject int

	// BudgetPerHour is BitbucketBudget read: the REST API calls each
	// Bitbucket connection may make in a rolling hour.
	BudgetPerHour int
}

// AllowPrivate reports whether alert webhooks may reach private addresses.
func (c Config) AllowPrivate() bool { return c.AlertsAllowPrivate == "true" }

// Demo reports whether no OAuth consumer is configured, in which case
// Tether runs its built-in Bitbucket emulator.
func (c Config) Demo() bool { return c.BitbucketClientID == "" }

// SecureCookies reports whether cookies must be marked Secure.
func (c Config) SecureCookies() bool { return strings.HasPrefix(c.PublicURL, "https://") }

type setting struct {
	dst       *string
	flag, env string
	def, help string
}

// number is a setting that is a whole number.
type number struct {
	dst       *int
	flag, env string
	def       int
	help      string
}

func settings(c *Config) []setting {
	return []setting{
		{&c.Addr, "addr", "TETHER_ADDR", "localhost:8080", "address to listen on"},
		{&c.PublicURL, "public-url", "TETHER_PUBLIC_URL", "http://localhost:8080", "base URL people and Bitbucket reach Tether at (OAuth callback, webhook URLs)"},
		{&c.DataDir, "data-dir", "TETHER_DATA_DIR", "./data", "directory for the SQLite database and the generated secret key"},
		{&c.SecretKey, "secret-key", "TETHER_SECRET_KEY", "", "key that encrypts secrets at rest (at least 32 characters; generated into the data dir when unset)"},
		{&c.BitbucketClientID, "bitbucket-client-id", "BITBUCKET_CLIENT_ID", "", "Bitbucket OAuth consumer key (unset: demo mode with the built-in emulator)"},
		{&c.BitbucketClientSecret, "bitbucket-client-secret", "BITBUCKET_CLIENT_SECRET", "", "Bitbucket OAuth consumer secret"},
		{&c.BitbucketURL, "bitbucket-url", "BITBUCKET_URL", "https://bitbucket.org", "Bitbucket web and OAuth base URL"},
		{&c.BitbucketAPIURL, "bitbucket-api-url", "BITBUCKET_API_URL", "https://api.bitbucket.org/2.0", "Bitbucket REST API base URL"},
		{&c.BitbucketSSHAddr, "bitbucket-ssh-addr", "BITBUCKET_SSH_ADDR", "bitbucket.org:22", "Bitbucket SSH host:port for deploy-key probes"},
		{&c.BitbucketSSHHostKeys, "bitbucket-ssh-host-keys", "BITBUCKET_SSH_HOST_KEYS", "", "authorized_keys-format SSH host keys to pin (default: Bitbucket's published keys)"},
		{&c.SMTPURL, "smtp-url", "TETHER_SMTP_URL", "", "mail server for e-mail alerts: smtp://user:password@host:587 (STARTTLS) or smtps://…:465"},
		{&c.SMTPFrom, "smtp-from", "TETHER_SMTP_FROM", "", "sender of e-mail alerts (default tether@ the public URL's host)"},
		{&c.SMTPCAFile, "smtp-ca-file", "TETHER_SMTP_CA_FILE", "", "PEM file of CA certificates to trust for the mail server (default: the system's)"},
		{&c.AlertsAllowPrivate, "alerts-allow-private", "TETHER_ALERTS_ALLOW_PRIVATE", "false", "let alert webhooks reach loopback, private and link-local addresses (on-premises chat)"},
		{&c.TrustedProxies, "trusted-proxies", "TETHER_TRUSTED_PROXIES", "", "reverse proxies (addresses or CIDRs, comma-separated) whose X-Forwarded-For names the client"},
		{&c.BitbucketBudget, "bitbucket-budget", "TETHER_BITBUCKET_BUDGET", "800", "Bitbucket REST API calls each connection may make per rolling hour (Bitbucket allows about 1,000 per user)"},
		{&c.MetricsToken, "metrics-token", "TETHER_METRICS_TOKEN", "", "bearer token for /metrics (unset: no /metrics)"},
	}
}

func numbers(c *Config) []number {
	return []number{
		{&c.RetentionDays, "retention-days", "TETHER_RETENTION_DAYS", 30, "days accepted deliveries and workflows are kept"},
		{&c.RetentionPerProject, "retention-per-project", "TETHER_RETENTION_PER_PROJECT", 1000, "most recent deliveries and workflows kept per project, whatever their age"},
	}
}

// Load parses args (without the program name) over the environment.
func Load(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("tether", flag.ContinueOnError)
	fs.SetOutput(stderr)
	all := settings(&c)
	for _, s := range all {
		def := s.def
		if v := getenv(s.env); v != "" {
			def = v
		}
		fs.StringVar(s.dst, s.flag, def, s.help+" ($"+s.env+")")
	}
	var errs []error
	for _, n := range numbers(&c) {
		def := n.def
		if v := getenv(n.env); v != "" {
			var err error
			if def, err = strconv.Atoi(v); err != nil {
				errs = append(errs, fmt.Errorf("%s must be a whole number, got %q", n.env, v))
			}
		}
		fs.IntVar(n.dst, n.flag, def, n.help+" ($"+n.env+")")
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	return c, c.validate()
}

// Proxies returns TrustedProxies as prefixes (a bare address is its own
// /32 or /128).
func (c Config) Proxies() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(c.TrustedProxies, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("TETHER_TRUSTED_PROXIES: %q is neither an address nor a CIDR prefix", f)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func (c *Config) validate() error {
	var errs []error
	for name, v := range map[string]*string{
		"TETHER_PUBLIC_URL": &c.PublicURL, "BITBUCKET_URL": &c.BitbucketURL, "BITBUCKET_API_URL": &c.BitbucketAPIURL,
	} {
		*v = strings.TrimRight(*v, "/")
		u, err := url.Parse(*v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s must be an absolute http(s) URL, got %q", name, *v))
		}
	}
	if c.BitbucketClientID != "" && c.BitbucketClientSecret == "" {
		errs = append(errs, errors.New("BITBUCKET_CLIENT_SECRET is required when BITBUCKET_CLIENT_ID is set"))
	}
	if c.AlertsAllowPrivate != "true" && c.AlertsAllowPrivate != "false" {
		errs = append(errs, fmt.Errorf("TETHER_ALERTS_ALLOW_PRIVATE must be true or false, got %q", c.AlertsAllowPrivate))
	}
	if c.SecretKey != "" && len(c.SecretKey) < 32 {
		errs = append(errs, errors.New("TETHER_SECRET_KEY must be at least 32 characters"))
	}
	if _, err := c.Proxies(); err != nil {
		errs = append(errs, err)
	}
	if c.RetentionDays < 1 {
		errs = append(errs, fmt.Errorf("TETHER_RETENTION_DAYS must be at least 1, got %d", c.RetentionDays))
	}
	if c.RetentionPerProject < 1 {
		errs = append(errs, fmt.Errorf("TETHER_RETENTION_PER_PROJECT must be at least 1, got %d", c.RetentionPerProject))
	}
	// Bitbucket's scaled limits end at 10,000 an hour; OAuth users get 1,000.
	if n, err := strconv.Atoi(strings.TrimSpace(c.BitbucketBudget)); err != nil || n < 1 || n > 10000 {
		errs = append(errs, fmt.Errorf("TETHER_BITBUCKET_BUDGET must be a whole number of calls per hour from 1 to 10000, got %q", c.BitbucketBudget))
	} else {
		c.BudgetPerHour = n
	}
	if c.MetricsToken != "" && len(c.MetricsToken) < 16 {
		errs = append(errs, errors.New("TETHER_METRICS_TOKEN must be at least 16 characters"))
	}
	return errors.Join(errs...)
}
