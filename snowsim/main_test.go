package snowsim_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge/snowsim"
)

// TestMainServesUntilCancelled runs `ctibridge snowsim` as a user would.
func TestMainServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- snowsim.Main(ctx, []string{"--addr", "127.0.0.1:0", "--latency", "1ms", "--rate-limit", "1000"}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	base := regexp.MustCompile(`http://127\.0\.0\.1:\d+`).FindString(line)
	if base == "" || !strings.Contains(line, "admin/admin") {
		t.Fatalf("banner %q", line)
	}
	req, _ := http.NewRequest("GET", base+"/api/now/table/sys_user?sysparm_limit=1", nil)
	req.SetBasicAuth("admin", "admin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET: %v %v", resp, err)
	}
	resp.Body.Close()
	go io.Copy(io.Discard, pr)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Main after interrupt: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Main did not stop")
	}
}

// serve runs `ctibridge snowsim args...` until the test ends and returns
// its base URL and banner.
func serve(t *testing.T, args ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- snowsim.Main(ctx, append([]string{"--addr", "127.0.0.1:0"}, args...), pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() { cancel(); <-done })
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr)
	return regexp.MustCompile(`http://127\.0\.0\.1:\d+`).FindString(line), line
}

// TestMainHardenedFlags: --hardened turns every behaviour on, a behaviour's
// own flag turns it back off, and the banner says which are on.
func TestMainHardenedFlags(t *testing.T) {
	base, banner := serve(t, "--hardened", "--sessions=false")
	if !strings.Contains(banner, "hardened:") || strings.Contains(banner, "sessions") || !strings.Contains(banner, "e164") {
		t.Errorf("banner %q", banner)
	}
	post := func(base string, number string) *http.Response {
		req, _ := http.NewRequest("POST", base+"/api/now/table/interaction", strings.NewReader(`{"caller_phone_number":"`+number+`"}`))
		req.SetBasicAuth("cti_integration", "cti_integration")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := post(base, "Anonymous"); r.StatusCode != 400 || len(r.Cookies()) != 0 {
		t.Errorf("--hardened --sessions=false: %d, cookies %v; want E.164 refused and no session", r.StatusCode, r.Cookies())
	}
	base, banner = serve(t)
	want := 201
	if snowsim.DefaultHardening().E164 {
		want = 400
	}
	if r := post(base, "Anonymous"); r.StatusCode != want {
		t.Errorf("default: %d, want %d; banner %q", r.StatusCode, want, banner)
	}
	if snowsim.DefaultHardening() == (snowsim.Hardening{}) && !strings.Contains(banner, "lenient") {
		t.Errorf("default banner %q, want it to say lenient", banner)
	}
	base, _ = serve(t, "--e164=false", "--sessions")
	if r := post(base, "Anonymous"); r.StatusCode != 201 || len(r.Cookies()) == 0 {
		t.Errorf("--e164=false --sessions: %d, cookies %v", r.StatusCode, r.Cookies())
	}
}

func TestMainRefusesBadFlags(t *testing.T) {
	dir := t.TempDir()
	badKey := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badKey, []byte("hardening: {e165: true}\n"), 0o600)
	for _, args := range [][]string{{"--error-rate", "2"}, {"--latency", "-1s"}, {"--data", "/nonexistent.json"}, {"--addr", "256.0.0.1:1"}, {"--nope"},
		{"--wrap-up-duration", "0s"}, {"--data", badKey}} {
		if err := snowsim.Main(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
