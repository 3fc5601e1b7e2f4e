package bridge_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge/bridge"
	"github.com/ctibridge/ctibridge/bridge/bridgetest"
	"github.com/ctibridge/ctibridge/snowsim"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// clientFrom is an HTTP client whose connections come from ip: on Linux
// every 127.x.y.z address reaches a listener on 127.0.0.1. It does not
// follow redirects, and closes its connections when the test ends (before
// the bridge stops, if made after it: a connection dialed for a request
// that then went out on another would hold the bridge's shutdown 5 s).
func clientFrom(t *testing.T, ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
}

type answer struct {
	status     int
	location   string
	retryAfter string
	cookie     string
	body       string
}

func consoleLogin(t *testing.T, c *http.Client, base, user, pass string) answer {
	t.Helper()
	resp, err := c.PostForm(base+"/console/login", url.Values{"username": {user}, "password": {pass}, "next": {"/console/errors"}})
	if err != nil {
		t.Fatal(err)
	}
	return read(resp)
}

func adminGet(t *testing.T, c *http.Client, base, user, pass string) answer {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/admin/calls", nil)
	req.SetBasicAuth(user, pass)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return read(resp)
}

func read(resp *http.Response) answer {
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("Retry-After"), resp.Header.Get("Set-Cookie"), string(b)}
}

// TestLoginThrottling: parallel password guesses from one address are
// refused with 429 once its allowance is used, on the console and on the
// admin API; the refused ones are not even checked; an operator elsewhere
// logs in meanwhile; the failures are counted and logged without the
// passwords; and the limit lifts again with time.
func TestLoginThrottling(t *testing.T) {
	const password = "Console-Pa55-8e1d"
	_, simURL := bridgetest.Simulator(t, snowsim.Options{})
	cfg := bridgetest.Config(t, simURL, map[string]string{"CTIBRIDGE_CONSOLE_PASSWORD": password})
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	b, err := bridge.New(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)}
	bridge.SetLoginClock(b, clock.Now)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := b.Serve(ctx, ln, nil); err != nil {
			t.Errorf("serve: %v", err)
		}
		b.Close()
	}()
	t.Cleanup(func() { cancel(); <-done })
	base := "http://" + ln.Addr().String()
	consoleGuesser, adminGuesser, operator := clientFrom(t, "127.0.0.1"), clientFrom(t, "127.0.0.3"), clientFrom(t, "127.0.0.2")

	// 64 guesses at once on each surface, each from one address.
	guess := func(i int) string { return fmt.Sprintf("Guess-%02d-q7", i) }
	var mu sync.Mutex
	var consoleAnswers, adminAnswers []answer
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			a := consoleLogin(t, consoleGuesser, base, "admin", guess(i))
			mu.Lock()
			consoleAnswers = append(consoleAnswers, a)
			mu.Unlock()
		})
		wg.Go(func() {
			a := adminGet(t, adminGuesser, base, "root", guess(100+i))
			mu.Lock()
			adminAnswers = append(adminAnswers, a)
			mu.Unlock()
		})
	}
	wg.Wait()
	var consoleFailed, consoleThrottled, adminFailed, adminThrottled int
	for _, a := range consoleAnswers {
		switch {
		case a.status == http.StatusSeeOther && strings.Contains(a.location, "failed=1"):
			consoleFailed++
		case a.status == http.StatusTooManyRequests:
			consoleThrottled++
			if a.retryAfter != "30" || !strings.Contains(a.body, `id="login-throttled"`) || !strings.Contains(a.body, "Too many failed logins") ||
				strings.Contains(a.body, "login-failed") {
				t.Errorf("throttled console login: Retry-After %q, page:\n%s", a.retryAfter, a.body)
			}
		default:
			t.Errorf("console guess answered %d %s", a.status, a.location)
		}
	}
	for _, a := range adminAnswers {
		switch a.status {
		case http.StatusUnauthorized:
			adminFailed++
		case http.StatusTooManyRequests:
			adminThrottled++
			if a.retryAfter != "30" || !strings.Contains(a.body, "too many failed logins") {
				t.Errorf("throttled admin request: Retry-After %q, body %s", a.retryAfter, a.body)
			}
		default:
			t.Errorf("admin guess answered %d", a.status)
		}
	}
	if consoleFailed != 5 || consoleThrottled != 59 || adminFailed != 5 || adminThrottled != 59 {
		t.Errorf("console: %d checked, %d refused; admin: %d checked, %d refused; want 5 and 59 on each",
			consoleFailed, consoleThrottled, adminFailed, adminThrottled)
	}

	// Meanwhile an operator at another address logs in and uses the admin API.
	if a := consoleLogin(t, operator, base, "admin", password); a.status != http.StatusSeeOther || a.location != "/console/errors" ||
		!strings.Contains(a.cookie, "ctibridge_session=") {
		t.Errorf("operator's console login: %d %q cookie %q", a.status, a.location, a.cookie)
	}
	if a := adminGet(t, operator, base, "admin", password); a.status != http.StatusOK {
		t.Errorf("operator's admin request: %d %s", a.status, a.body)
	}
	// The guessers' addresses are refused even with the right password:
	// it is not checked at all while they are limited.
	if a := consoleLogin(t, consoleGuesser, base, "admin", password); a.status != http.StatusTooManyRequests {
		t.Errorf("right password from the limited address: %d %s", a.status, a.location)
	}
	if a := adminGet(t, adminGuesser, base, "admin", password); a.status != http.StatusTooManyRequests {
		t.Errorf("right password from the limited address on the admin API: %d", a.status)
	}

	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics := read(resp).body
	for _, want := range []string{
		`ctibridge_login_failures_total{surface="console"} 5`,
		`ctibridge_login_failures_total{surface="admin"} 5`,
		`ctibridge_login_throttled_total{limit="address",surface="console"} 60`,
		`ctibridge_login_throttled_total{limit="address",surface="admin"} 60`,
		`ctibridge_login_throttled_total{limit="overall",surface="console"} 0`,
	} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(metrics, "ctibridge_login"))
		}
	}

	logged := logs.String()
	failures := grepLines(logged, "wrong user name or password")
	if n := strings.Count(failures, "\n"); n != 10 ||
		!strings.Contains(failures, `"remote":"127.0.0.1","user":"admin"`) || !strings.Contains(failures, `"remote":"127.0.0.3","user":"root"`) {
		t.Errorf("want 10 failures logged with address and user, got %d:\n%s", n, failures)
	}
	if !strings.Contains(logged, "refusing attempts") {
		t.Errorf("the start of the throttling is not logged:\n%s", grepLines(logged, "login"))
	}
	for i := range 164 {
		if strings.Contains(logged, guess(i)) {
			t.Errorf("guessed password %q logged", guess(i))
		}
	}
	if strings.Contains(logged, password) {
		t.Error("the console password was logged")
	}

	// The limit lifts with time: one attempt per address every 30 s.
	clock.Advance(30 * time.Second)
	if a := consoleLogin(t, consoleGuesser, base, "admin", password); a.status != http.StatusSeeOther || a.location != "/console/errors" {
		t.Errorf("right password 30s later: %d %q", a.status, a.location)
	}
	if a := adminGet(t, adminGuesser, base, "admin", password); a.status != http.StatusOK {
		t.Errorf("right password on the admin API 30s later: %d %s", a.status, a.body)
	}
}

func grepLines(s, substr string) string {
	var out strings.Builder
	for line := range strings.Lines(s) {
		if strings.Contains(line, substr) {
			out.WriteString(line)
		}
	}
	return out.String()
}
