package apptest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// SkipBrowserEnv names the variable that, set to "skip", skips the
// browser tests where Chromium is missing instead of failing them.
const SkipBrowserEnv = "TETHER_BROWSER_TESTS"

// Browser drives one headless Chromium tab (Debian's package) with a fresh
// profile. Every step fails the test on error, with a screenshot saved.
type Browser struct {
	T   testing.TB
	Ctx context.Context
}

// NewBrowser starts Chromium. Without it the test fails (scripts/test.sh
// installs it), unless TETHER_BROWSER_TESTS=skip says to skip the browser
// tests on purpose.
func NewBrowser(t testing.TB) *Browser {
	t.Helper()
	return NewBrowserFor(t, 2*time.Minute)
}

// NewBrowserFor is NewBrowser for a test that needs the tab longer than
// two minutes (a measurement with a page left open).
func NewBrowserFor(t testing.TB, timeout time.Duration) *Browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv(SkipBrowserEnv) == "skip" {
			t.Skip("chromium is not installed and " + SkipBrowserEnv + "=skip: browser test skipped")
		}
		t.Fatal("chromium is not installed: ./scripts/test.sh installs it (Debian's chromium package); set " +
			SkipBrowserEnv + "=skip to skip the browser tests on purpose")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	b := &Browser{T: t, Ctx: ctx}
	b.do("start chromium")
	b.refuseCSPViolations()
	return b
}

// refuseCSPViolations fails the test, when it ends, for every message the
// browser logged about something Tether's Content-Security-Policy blocked
// (an inline handler, an eval, a form sent elsewhere): every browser test
// runs under the policy, and nothing it does may need more.
func (b *Browser) refuseCSPViolations() {
	var (
		mu         sync.Mutex
		violations []string
	)
	messages := chromedp.Console(b.Ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if strings.Contains(m.Text, "Content Security Policy") {
				mu.Lock()
				violations = append(violations, m.Text)
				mu.Unlock()
			}
		}
	}()
	b.T.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, v := range violations {
			b.T.Errorf("Content-Security-Policy violation: %s", v)
		}
	})
}

func (b *Browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.T.Helper()
	if err := chromedp.Do(b.Ctx, steps...); err != nil {
		b.Screenshot("failed-" + b.T.Name())
		b.T.Fatalf("browser: %s: %v", what, err)
	}
}

// Navigate opens url. A navigation the page's own is still finishing
// cuts short (Chromium's net::ERR_ABORTED: a form just submitted, a
// redirect still arriving) is tried again once that one has landed.
func (b *Browser) Navigate(url string) {
	b.T.Helper()
	var err error
	for try := 0; try < 3; try++ {
		if err = chromedp.Do(b.Ctx, chromedp.Navigate(url)); err == nil || !strings.Contains(err.Error(), "ERR_ABORTED") {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if err != nil {
		b.Screenshot("failed-" + b.T.Name())
		b.T.Fatalf("browser: navigate %s: %v", url, err)
	}
}

// Click clicks the element matching the CSS selector.
func (b *Browser) Click(sel string) {
	b.T.Helper()
	b.do("click "+sel, chromedp.Click(chromedp.CSS(sel)))
}

// Press clicks the element matching sel from inside the page, in one step.
// Use it for buttons in parts that poll and swap themselves: Click finds
// the node first and then moves the mouse, and a poll in between leaves it
// clicking a node that is gone.
//
// It waits for the page to have loaded first: before htmx has run (its
// script is deferred) a button's hx-post does nothing when clicked.
func (b *Browser) Press(sel string) {
	b.T.Helper()
	b.WaitFor(`document.readyState === "complete" && !!window.htmx`, 10*time.Second)
	js := `(() => { const e = document.querySelector(` + strconv.Quote(sel) + `); if (!e) return false; e.click(); return true })()`
	ok, err := chromedp.Run(b.Ctx, chromedp.Evaluate[bool](js))
	if err != nil || !ok {
		b.Screenshot("failed-" + b.T.Name())
		b.T.Fatalf("browser: press %s: found %v, %v", sel, ok, err)
	}
}

// DisableJavaScript switches the tab's scripts off from now on (htmx
// included), as for someone who blocks them or a page whose scripts have
// not loaded: every action must still work as a plain form post. Use
// Click, WaitVisible and Text after it; WaitFor and Eval run scripts.
func (b *Browser) DisableJavaScript() {
	b.T.Helper()
	b.do("disable JavaScript", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return err
	}))
}

// Type types text into the element matching sel.
func (b *Browser) Type(sel, text string) {
	b.T.Helper()
	b.do("type into "+sel, chromedp.SendKeys(chromedp.CSS(sel), text))
}

// Submit submits the form matching sel.
func (b *Browser) Submit(sel string) {
	b.T.Helper()
	b.do("submit "+sel, chromedp.Submit(chromedp.CSS(sel)))
}

// WaitVisible waits until an element matching sel is visible.
func (b *Browser) WaitVisible(sel string) {
	b.T.Helper()
	b.do("wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
}

// Text is the text of the element matching sel.
func (b *Browser) Text(sel string) string {
	b.T.Helper()
	v, err := chromedp.Run(b.Ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.T.Fatalf("browser: text of %s: %v", sel, err)
	}
	return strings.TrimSpace(v)
}

// Attr is an attribute of the element matching sel.
func (b *Browser) Attr(sel, name string) string {
	b.T.Helper()
	v, err := chromedp.Run(b.Ctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
	if err != nil {
		b.T.Fatalf("browser: attribute %s of %s: %v", name, sel, err)
	}
	return v.Value
}

// Eval evaluates a JavaScript expression and returns its string value.
func (b *Browser) Eval(js string) string {
	b.T.Helper()
	v, err := chromedp.Run(b.Ctx, chromedp.Evaluate[string](js))
	if err != nil {
		b.T.Fatalf("browser: eval %s: %v", js, err)
	}
	return v
}

// WaitFor polls the JavaScript condition until it is true or timeout.
func (b *Browser) WaitFor(cond string, timeout time.Duration) {
	b.T.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := chromedp.Run(b.Ctx, chromedp.Evaluate[bool](cond))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.Screenshot("timeout-" + b.T.Name())
			b.T.Fatalf("browser: %s not true after %s (last error %v)", cond, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Screenshot saves the whole page as test-artifacts/<name>.png at the
// module root, for people to look at after a run.
func (b *Browser) Screenshot(name string) {
	b.save(name, chromedp.FullScreenshot(100))
}

// ScreenshotViewport saves only what the 1280×900 window shows — what the
// person sees without scrolling — as test-artifacts/<name>.png.
func (b *Browser) ScreenshotViewport(name string) {
	b.save(name, chromedp.CaptureScreenshot())
}

// InViewport reports whether the element matching sel is visible inside
// the window as it is scrolled now.
func (b *Browser) InViewport(sel string) bool {
	b.T.Helper()
	js := `(() => { const e = document.querySelector(` + strconv.Quote(sel) + `); if (!e) return false;
		const r = e.getBoundingClientRect();
		return r.width > 0 && r.height > 0 && r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth; })()`
	ok, err := chromedp.Run(b.Ctx, chromedp.Evaluate[bool](js))
	if err != nil {
		b.T.Fatalf("browser: is %s in the viewport: %v", sel, err)
	}
	return ok
}

func (b *Browser) save(name string, shot chromedp.Action[[]byte]) {
	png, err := chromedp.Run(b.Ctx, shot)
	if err != nil {
		b.T.Logf("screenshot %s: %v", name, err)
		return
	}
	dir := filepath.Join(moduleRoot(), "test-artifacts")
	os.MkdirAll(dir, 0o755)
	name = strings.NewReplacer("/", "_", " ", "_").Replace(name)
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.T.Logf("write screenshot: %v", err)
	}
}

func moduleRoot() string {
	dir, _ := os.Getwd()
	for d := dir; d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	return dir
}

// SignUpWithBitbucket clicks through "Log in with Bitbucket" as username
// (password "secret-password") and waits for the account page.
func (b *Browser) SignUpWithBitbucket(env *Env, username string) {
	b.T.Helper()
	b.Navigate(env.URL + "/")
	b.Click(`[data-testid="bitbucket-login"]`)
	b.SignInToBitbucket(username)
	b.Click(`#grant-access`)
	b.FinishSetup(env)
}

// SignInToBitbucket fills the emulator's sign-in form as username
// (password "secret-password") and waits for what comes after it.
func (b *Browser) SignInToBitbucket(username string) {
	b.T.Helper()
	b.WaitVisible(`#signin-form`)
	b.Type(`#signin-form input[name="username"]`, username)
	b.Type(`#signin-form input[name="password"]`, "secret-password")
	b.Submit(`#signin-form`)
	b.WaitFor(`!document.querySelector("#signin-form")`, 10*time.Second)
}

// FinishSetup creates the organization a first sign-in asks for, when the
// browser is on that step, and opens the account page.
func (b *Browser) FinishSetup(env *Env) {
	b.T.Helper()
	// Wait for the landing page to be loaded, not just named: clicking in
	// a document that is being replaced finds a node that is gone.
	b.WaitFor(`document.readyState === "complete" && (location.pathname === "/setup" && !!document.querySelector('[data-testid="create-organization"]') || location.pathname === "/account")`, 10*time.Second)
	if b.Eval(`location.pathname`) == "/setup" {
		b.Click(`[data-testid="create-organization"]`)
		b.WaitFor(`location.pathname === "/projects"`, 10*time.Second)
		b.Navigate(env.URL + "/account")
	}
	b.WaitVisible(`[data-testid="bitbucket-connection"]`)
}
