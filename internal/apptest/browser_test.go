package apptest

import (
	"fmt"
	"strings"
	"testing"
)

// outcome records how NewBrowser ended a test, without ending this one.
type outcome struct {
	testing.TB
	failed, skipped string
}

func (o *outcome) Helper()                      {}
func (o *outcome) Fatal(args ...any)            { o.failed = fmt.Sprint(args...); panic(o) }
func (o *outcome) Skip(args ...any)             { o.skipped = fmt.Sprint(args...); panic(o) }
func (o *outcome) Fatalf(f string, args ...any) { o.Fatal(fmt.Sprintf(f, args...)) }

func newBrowserWithout(t *testing.T) (o *outcome) {
	o = &outcome{TB: t}
	defer func() {
		if r := recover(); r != nil && r != o {
			panic(r)
		}
	}()
	NewBrowser(o)
	return o
}

// Without Chromium a browser test fails, saying how to get it — unless
// TETHER_BROWSER_TESTS=skip asks to skip it.
func TestBrowserTestsFailWithoutChromium(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no chromium on it
	t.Setenv(SkipBrowserEnv, "")
	if o := newBrowserWithout(t); o.skipped != "" || !strings.Contains(o.failed, "chromium is not installed") ||
		!strings.Contains(o.failed, SkipBrowserEnv+"=skip") {
		t.Fatalf("without chromium: failed %q, skipped %q", o.failed, o.skipped)
	}
	t.Setenv(SkipBrowserEnv, "skip")
	if o := newBrowserWithout(t); o.failed != "" || o.skipped == "" {
		t.Fatalf("without chromium, opted out: failed %q, skipped %q", o.failed, o.skipped)
	}
}
