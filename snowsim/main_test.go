package snowsim_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
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

func TestMainRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--error-rate", "2"}, {"--latency", "-1s"}, {"--data", "/nonexistent.json"}, {"--addr", "256.0.0.1:1"}, {"--nope"}} {
		if err := snowsim.Main(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
