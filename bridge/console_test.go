package bridge_test

import (
	"context"
	"html"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ctibridge/ctibridge/snowsim"
)

// chromium finds a headless-capable Chromium, or skips the test visibly.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("SKIP: no Chromium on PATH; install Debian's chromium package to run the console browser tests (.ci/run does)")
	return ""
}

func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium(t)), chromedp.NoSandbox,
		chromedp.Flag("headless", true), chromedp.Flag("disable-gpu", true), chromedp.WindowSize(1280, 900))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancel3 := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancel3)
	return ctx
}

// shot saves a screenshot when CTIBRIDGE_SCREENSHOTS names a directory (the
// README's pictures are made this way).
func shot(ctx context.Context, t *testing.T, name string) {
	dir := os.Getenv("CTIBRIDGE_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
}

// TestConsoleFollowAFailedCallAndRetryIt is what an operator does: log in,
// see a call stopped on a ServiceNow error, read why, fix the cause, press
// Retry and watch the call reach ServiceNow.
func TestConsoleFollowAFailedCallAndRetryIt(t *testing.T) {
	ctx := browser(t)
	e := setup(t)
	// A few healthy calls for the overview, then one the instance refuses:
	// the integration user lost the right to create interactions.
	for i, ani := range []string{"8013203420", "+442079460958", "anonymous"} {
		id := "93" + string(rune('0'+i)) + "0"
		e.post(id, "queued", map[string]any{"ani": ani})
		e.post(id, "answered", map[string]any{"agentUserName": "jdoe"})
	}
	e.waitSynced(10*time.Second, "9300", "9310", "9320")
	restore := e.revoke("interaction", "r")
	e.post("9400", "queued", map[string]any{"ani": "+1 312 555 0100"})
	deadline := time.Now().Add(10 * time.Second)
	for !e.status("9400").Parked {
		if time.Now().After(deadline) {
			t.Fatalf("the refused call was not stopped: %+v", e.status("9400"))
		}
		time.Sleep(50 * time.Millisecond)
	}

	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(css(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return v
	}
	step := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// Not logged in: the console sends us to the login page.
	step("login page", chromedp.Navigate(e.url+"/console/"), chromedp.WaitVisible(css("#login")))
	shot(ctx, t, "console-login")
	step("wrong password",
		chromedp.SendKeys(css("#username"), "admin"),
		chromedp.SendKeys(css("#password"), "wrong"),
		chromedp.Click(css("#login")),
		chromedp.WaitVisible(css("#login-failed")))
	step("log in",
		chromedp.SendKeys(css("#username"), "admin"),
		chromedp.SendKeys(css("#password"), "console-pass"),
		chromedp.Click(css("#login")),
		chromedp.WaitVisible(css("#calls")))
	calls := text("#calls")
	for _, want := range []string{"9400", "9300", "Alice Caller", "stopped", "work_in_progress"} {
		if !strings.Contains(calls, want) {
			t.Errorf("live calls lack %q:\n%s", want, calls)
		}
	}
	if n := text("#open-errors"); n != "1" {
		t.Errorf("open errors tile %q, want 1", n)
	}
	shot(ctx, t, "console-overview")

	// Follow the failed call.
	step("call page", chromedp.Click(css(`a[href="/console/calls/9400"]`)), chromedp.WaitVisible(css("#call")))
	page := text("body")
	for _, want := range []string{"stopped on an error", "403", "ACL Exception Insert Failed", "create interaction"} {
		if !strings.Contains(page, want) {
			t.Errorf("call page lacks %q:\n%s", want, page)
		}
	}
	shot(ctx, t, "console-call")

	// Fix the cause, then retry from the error log.
	restore()
	step("errors page", chromedp.Navigate(e.url+"/console/errors"), chromedp.WaitVisible(css("#errors")))
	shot(ctx, t, "console-errors")
	step("retry", chromedp.Click(css(`button.retry[data-contact="9400"]`)), chromedp.WaitVisible(css("#retried")))
	e.waitSynced(10*time.Second, "9400")
	step("call page again", chromedp.Navigate(e.url+"/console/calls/9400"), chromedp.WaitVisible(css("#insync")))
	if v := text("#insync"); v != "yes" {
		t.Errorf("after retry the call page says in sync: %q", v)
	}
	if rec := e.interaction(e.status("9400").InteractionSysID); rec["state"] != "new" {
		t.Errorf("interaction after retry: %v", rec)
	}
	step("errors page again", chromedp.Navigate(e.url+"/console/errors"), chromedp.WaitVisible(css("#errors")))
	if v := text("#errors"); strings.Contains(v, "9400") {
		t.Errorf("the retried entry is still open:\n%s", v)
	}
	step("lookups", chromedp.Navigate(e.url+"/console/lookups"), chromedp.WaitVisible(css("body")))
	shot(ctx, t, "console-lookups")
}

// TestConsoleRefusesForgedRequests: state changes need the session's CSRF
// token; the Studio key opens nothing; the session cookie is locked down.
func TestConsoleRefusesForgedRequests(t *testing.T) {
	e := setup(t)
	jar := &cookieJar{}
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(e.url+"/console/login", url.Values{"username": {"admin"}, "password": {"console-pass"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ck := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/console"} {
		if !strings.Contains(ck, want) {
			t.Errorf("session cookie %q lacks %s", ck, want)
		}
	}
	resp, err = c.PostForm(e.url+"/console/errors/retry", url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("retry without CSRF token: %d, want 403", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", e.url+"/console/errors", nil)
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err = (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/login") {
		t.Errorf("Studio key on the console: %d %s, want a redirect to login", resp.StatusCode, resp.Header.Get("Location"))
	}
}

type cookieJar struct{ cookies []*http.Cookie }

func (j *cookieJar) SetCookies(_ *url.URL, cs []*http.Cookie) { j.cookies = append(j.cookies, cs...) }
func (j *cookieJar) Cookies(*url.URL) []*http.Cookie          { return j.cookies }

// TestConsoleRetryAllMatching: the "Retry all matching" form retries only
// the calls behind entries that match the filter.
func TestConsoleRetryAllMatching(t *testing.T) {
	e := setup(t)
	restore := e.revoke("interaction", "r")
	for _, id := range []string{"9501", "9502", "9503"} {
		e.post(id, "queued", map[string]any{"ani": "+1 312 555 0100"})
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(e.adminErrors("severity=error")) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("errors: %v", e.adminErrors(""))
		}
		time.Sleep(50 * time.Millisecond)
	}
	restore()

	jar := &cookieJar{}
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(e.url+"/console/login", url.Values{"username": {"admin"}, "password": {"console-pass"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = c.Get(e.url + "/console/errors?operation=create+interaction")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the errors page")
	}
	// A filter that matches nothing retries nothing.
	resp, _ = c.PostForm(e.url+"/console/errors/retry", url.Values{"csrf": {string(m[1])}, "operation": {"map agent"}})
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); !strings.Contains(loc, "retried=0") {
		t.Errorf("non-matching filter: %s", loc)
	}
	resp, _ = c.PostForm(e.url+"/console/errors/retry", url.Values{"csrf": {string(m[1])}, "operation": {"create interaction"}})
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); !strings.Contains(loc, "retried=3") {
		t.Errorf("matching filter: %s", loc)
	}
	e.waitSynced(10*time.Second, "9501", "9502", "9503")
	if open := e.adminErrors("severity=error"); len(open) != 0 {
		t.Errorf("entries still open after the calls went through: %v", open)
	}
}

// TestConsoleLookups: the page lists unmapped agents and callers that were
// not identified, with the reason.
func TestConsoleLookups(t *testing.T) {
	e := setup(t)
	e.post("9601", "queued", map[string]any{"ani": "+1 312 555 0100"})
	e.post("9601", "answered", map[string]any{"agentId": "4711", "agentUserName": "temp.agent"})
	e.post("9602", "queued", map[string]any{"ani": "801-555-0199"})
	e.post("9603", "queued", map[string]any{"ani": "8013203420"})
	e.waitSynced(10*time.Second, "9601", "9602", "9603")
	jar := &cookieJar{}
	c := &http.Client{Jar: jar}
	if resp, err := c.PostForm(e.url+"/console/login", url.Values{"username": {"admin"}, "password": {"console-pass"}}); err == nil {
		resp.Body.Close()
	}
	resp, err := c.Get(e.url + "/console/lookups")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := html.UnescapeString(string(raw))
	for _, want := range []string{"temp.agent", "4711", "9601", "+13125550100", "none", "9602", "ambiguous"} {
		if !strings.Contains(page, want) {
			t.Errorf("lookups page lacks %q", want)
		}
	}
	if strings.Contains(page, "9603") {
		t.Error("an identified caller is listed as unidentified")
	}
}

// revoke leaves the integration user only the given rights on table, as an
// admin changing roles would; the returned func puts them back.
func (e *env) revoke(table, keep string) (restore func()) {
	role := snowsim.BuiltinRoles()["cti_integration"]
	changed := maps.Clone(role)
	changed[table] = keep
	e.sim.PutRole("cti_integration", changed)
	return func() { e.sim.PutRole("cti_integration", role) }
}
