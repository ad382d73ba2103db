package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"tether/internal/apptest"
)

// port prints a free port on 127.0.0.1.
func port(args []string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	return nil
}

// setup signs in to a running demo Tether as alice (password demo),
// creates a project from acme/api, waits for its deploy-key badge to say
// valid, and writes into the out folder: badge_url (the poll's URL),
// cookie (the Cookie header a browser sends: session and CSRF cookies)
// and fragment.html (the bytes of one poll's answer, for the bare anchor).
func setup(args []string) error {
	fs := flag.NewFlagSet("setup", flag.ExitOnError)
	base := fs.String("url", "", "Tether's base URL")
	out := fs.String("out", "", "folder to write badge_url, cookie and fragment.html into")
	fs.Parse(args)
	if *base == "" || *out == "" {
		return errors.New("-url and -out are required")
	}
	var t failer
	defer t.report()
	c := (&apptest.Env{T: &t, URL: *base}).Client()
	p := c.Submit(c.Get("/login"), `form[action="/auth/bitbucket"]`, nil, "")
	if p.Has("#signin-form") {
		p = c.Submit(p, "#signin-form", map[string]string{"username": "alice", "password": "demo"}, "")
	}
	if p.Has("#grant-access") {
		p = c.Submit(p, "form:has(#grant-access)", nil, "#grant-access")
	}
	c.FinishSetup(p)
	picker := c.Get("/projects/new")
	created := c.HTMX(http.MethodPost, "/projects", picker, url.Values{"repository": {"acme/api"}})
	if created.Status != http.StatusCreated {
		return fmt.Errorf("create acme/api: %d\n%s", created.Status, created.Body)
	}
	badge := *base + created.Header.Get("HX-Redirect") + "/deploy-key"
	u, _ := url.Parse(*base)
	var cookies []string
	for _, ck := range c.HTTP.Jar.Cookies(u) {
		cookies = append(cookies, ck.Name+"="+ck.Value)
	}
	cookie := strings.Join(cookies, "; ")

	// The first checks run after Create; poll as htmx does until the
	// badge is settled and valid.
	var body []byte
	for deadline := time.Now().Add(60 * time.Second); ; {
		req, _ := http.NewRequest(http.MethodGet, badge, nil)
		req.Header.Set("Cookie", cookie)
		req.Header.Set("HX-Request", "true")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`data-status="valid"`)) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the deploy-key badge did not turn valid: %d\n%s", resp.StatusCode, body)
		}
		time.Sleep(500 * time.Millisecond)
	}
	for name, v := range map[string]string{"badge_url": badge, "cookie": cookie, "fragment.html": string(body)} {
		if err := os.WriteFile(filepath.Join(*out, name), []byte(v), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// calls prints how many API calls the demo's Bitbucket counted for a
// user (its control page's calls table).
func calls(args []string) error {
	fs := flag.NewFlagSet("calls", flag.ExitOnError)
	base := fs.String("url", "", "Tether's base URL (demo mode)")
	user := fs.String("user", "alice", "Bitbucket username")
	fs.Parse(args)
	var t failer
	defer t.report()
	c := (&apptest.Env{T: &t, URL: *base}).Client()
	page := c.Get("/bitbucket/_emulator/")
	n, err := strconv.Atoi(page.Text(`#calls-table tr[data-username="` + *user + `"] [data-testid="calls-total"]`))
	if err != nil {
		return fmt.Errorf("no call count for %s on the emulator's page", *user)
	}
	fmt.Println(n)
	return nil
}

// failer lets apptest's browser-like client, written for tests, run in
// this program: a failure ends the program with the message.
type failer struct{ testing.TB }

func (f *failer) Helper()                        {}
func (f *failer) Fatal(args ...any)              { panic(fmt.Sprint(args...)) }
func (f *failer) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }

func (f *failer) report() {
	if r := recover(); r != nil {
		fmt.Fprintln(os.Stderr, "benchmark:", r)
		os.Exit(1)
	}
}
