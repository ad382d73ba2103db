package alerts

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPublic(t *testing.T) {
	t.Parallel()
	cases := []struct {
		addr   string
		public bool
	}{
		{"93.184.216.34", true},
		{"2606:4700::6810:84e5", true},
		{"127.0.0.1", false},
		{"127.8.9.10", false},
		{"::1", false},
		{"10.1.2.3", false},
		{"172.16.0.1", false},
		{"172.31.255.255", false},
		{"192.168.1.1", false},
		{"169.254.169.254", false}, // cloud metadata
		{"fe80::1", false},
		{"fe80::1%eth0", false},
		{"fc00::1", false},
		{"fd12:3456::1", false},
		{"0.0.0.0", false},
		{"::", false},
		{"224.0.0.1", false},
		{"ff02::1", false},
		{"100.64.0.1", false}, // CGNAT
		{"100.127.255.254", false},
		{"255.255.255.255", false},
		{"240.0.0.1", false},
		{"192.0.2.10", false},
		{"198.18.0.1", false},
		{"::ffff:127.0.0.1", false}, // IPv4-mapped
		{"::ffff:10.0.0.1", false},
		{"::ffff:93.184.216.34", true},
		{"64:ff9b::7f00:1", false}, // NAT64 of 127.0.0.1
		{"64:ff9b::5db8:d822", true},
		{"2002:7f00:1::", false}, // 6to4 of 127.0.0.1
		{"2002:5db8:d822::", true},
		{"2001:db8::1", false},
	}
	for _, tc := range cases {
		a := netip.MustParseAddr(tc.addr)
		if got := Public(a); got != tc.public {
			t.Errorf("Public(%s) = %v, want %v", tc.addr, got, tc.public)
		}
	}
}

// receiver counts what reaches it.
func receiver(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// With private addresses not allowed, the guard refuses at connect time:
// a loopback URL, a name that resolves to loopback, and a redirect from an
// allowed first hop to loopback (by address and by name) never reach the
// receiver. With them allowed, the same receiver is reached.
func TestGuardRefusesPrivateDestinations(t *testing.T) {
	t.Parallel()
	target, hits := receiver(t)
	_, port, _ := net.SplitHostPort(target.Listener.Addr().String())
	redirectTo := ""
	var hopHits atomic.Int32
	hop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hopHits.Add(1)
		http.Redirect(w, r, redirectTo, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(hop.Close)
	hopAddr := netip.MustParseAddrPort(hop.Listener.Addr().String())
	// The first hop stands for a public server: it is let through by
	// address and port, everything else on loopback is not.
	g := guard{except: func(ap netip.AddrPort) bool { return ap == hopAddr }}

	post := func(g guard, url string) error {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, url, strings.NewReader(`{"text":"hi"}`))
		resp, err := g.client(5 * time.Second).Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	for _, url := range []string{target.URL, "http://localhost:" + port + "/", "http://[::ffff:127.0.0.1]:" + port + "/"} {
		err := post(g, url)
		var refused *RefusedError
		if !errors.As(err, &refused) {
			t.Errorf("%s: err = %v, want refused", url, err)
		}
	}
	for _, to := range []string{target.URL + "/after-redirect", "http://localhost:" + port + "/after-redirect"} {
		redirectTo = to
		if err := post(g, hop.URL); !errors.Is(err, errRefused) {
			t.Errorf("redirect to %s: err = %v, want refused", to, err)
		}
	}
	if n := hits.Load(); n != 0 || hopHits.Load() != 2 {
		t.Fatalf("the private receiver was reached %d times (the first hop %d times, want 2)", n, hopHits.Load())
	}

	redirectTo = target.URL + "/after-redirect"
	if err := post(guard{allowPrivate: true}, hop.URL); err != nil {
		t.Fatalf("allowed: %v", err)
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("allowed: the receiver was reached %d times, want 1", n)
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	strict := &Service{cfg: Config{}}
	open := &Service{cfg: Config{AllowPrivate: true}}
	cases := []struct {
		url              string
		strictOK, openOK bool
	}{
		{"https://hooks.slack.com/services/T0/B0/abcdef", true, true},
		{"https://chat.example.com:8443/hooks/abc", true, true},
		{"http://hooks.slack.com/services/T0/B0/abcdef", false, true},
		{"https://127.0.0.1/hook", false, true},
		{"https://[::1]/hook", false, true},
		{"https://10.0.0.5/hook", false, true},
		{"https://169.254.169.254/latest", false, true},
		{"https://localhost/hook", false, true},
		{"https://chat.localhost/hook", false, true},
		{"ftp://example.com/x", false, false},
		{"not a url", false, false},
		{"", false, false},
		{"https://" + strings.Repeat("a", maxURL), false, false},
	}
	for _, tc := range cases {
		if got := strict.checkURL(tc.url) == ""; got != tc.strictOK {
			t.Errorf("strict %q: ok = %v (%s)", tc.url, got, strict.checkURL(tc.url))
		}
		if got := open.checkURL(tc.url) == ""; got != tc.openOK {
			t.Errorf("allow-private %q: ok = %v (%s)", tc.url, got, open.checkURL(tc.url))
		}
	}
}

func TestMasks(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://hooks.slack.com/services/T000/B000/XXXXsecretTOKENabcd": "https://hooks.slack.com/services/…abcd",
		"https://chat.example.com/hook?token=s3cr3t":                     "https://chat.example.com/hook",
		"https://chat.example.com/":                                      "https://chat.example.com/",
		"https://chat.example.com/averylongtokenonly1234":                "https://chat.example.com/…1234",
		"::::": "(unreadable URL)",
	} {
		if got := MaskURL(in); got != want {
			t.Errorf("MaskURL(%q) = %q, want %q", in, got, want)
		}
	}
	if got := MaskSecret("0123456789abcdef"); got != "••••cdef" {
		t.Errorf("MaskSecret = %q", got)
	}
	if got := MaskSecret("short"); got != "••••" {
		t.Errorf("MaskSecret(short) = %q", got)
	}
}

// What receivers are told to do works: a signature verifies for the
// body and timestamp it was made for, and for nothing else.
func TestSignAndVerify(t *testing.T) {
	t.Parallel()
	secret := []byte("a-shared-secret-of-32-characters")
	now := time.Unix(1_800_000_000, 0)
	ts := "1800000000"
	body := []byte(`{"text":"webhook of api is invalid"}`)
	sig := Sign(secret, ts, body)
	if !strings.HasPrefix(sig, "sha256=") || len(sig) != len("sha256=")+64 {
		t.Fatalf("signature %q", sig)
	}
	if !Verify(secret, ts, sig, body, now, 5*time.Minute) {
		t.Fatal("a good signature does not verify")
	}
	for name, ok := range map[string]bool{
		"other body":   Verify(secret, ts, sig, []byte(`{"text":"x"}`), now, 5*time.Minute),
		"other secret": Verify([]byte("another-secret-another-secret!!"), ts, sig, body, now, 5*time.Minute),
		"other time":   Verify(secret, "1800000001", sig, body, now, 5*time.Minute),
		"too old":      Verify(secret, ts, sig, body, now.Add(6*time.Minute), 5*time.Minute),
		"garbage time": Verify(secret, "soon", sig, body, now, 5*time.Minute),
	} {
		if ok {
			t.Errorf("%s: verified", name)
		}
	}
}

func TestParseSMTPURL(t *testing.T) {
	t.Parallel()
	s, err := ParseSMTPURL("smtp://mailer:p%40ss-WORD@mail.example.com:2525", "")
	if err != nil || s.Host != "mail.example.com" || s.Port != 2525 || s.Username != "mailer" || s.Password != "p@ss-WORD" || s.ImplicitTLS {
		t.Fatalf("smtp: %+v %v", s, err)
	}
	s, err = ParseSMTPURL("smtps://u:p@mail.example.com", "")
	if err != nil || s.Port != 465 || !s.ImplicitTLS {
		t.Fatalf("smtps: %+v %v", s, err)
	}
	if s, _ := ParseSMTPURL("smtp://mail.example.com", ""); s.Port != 587 || s.Username != "" {
		t.Fatalf("default port: %+v", s)
	}
	if s, err := ParseSMTPURL("", ""); err != nil || s.Host != "" {
		t.Fatalf("empty: %+v %v", s, err)
	}
	for _, bad := range []string{"http://u:hunter2-secret@mail.example.com", "smtp://u:hunter2-secret@:25", "smtp://u:hunter2-secret@host:99999"} {
		_, err := ParseSMTPURL(bad, "")
		if err == nil || strings.Contains(err.Error(), "hunter2-secret") {
			t.Errorf("%s: err = %v", strings.Replace(bad, "hunter2-secret", "…", 1), err)
		}
	}
	if _, err := ParseSMTPURL("smtp://mail.example.com", t.TempDir()+"/missing.pem"); err == nil {
		t.Error("a missing CA file is accepted")
	}
}
