package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge/lifecycle"
	"github.com/ctibridge/ctibridge/snowsim"
)

// TestMain lets the test binary act as the ctibridge command, so a test can
// run `serve` in a child process and kill it.
func TestMain(m *testing.M) {
	if args := os.Getenv("CTIBRIDGE_TEST_CHILD"); args != "" {
		os.Exit(mainExit(strings.Fields(args)))
	}
	os.Exit(m.Run())
}

const childKey = "kill-test-key-0123456789"

func startServe(t *testing.T, addr, db, sn string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "CTIBRIDGE_TEST_CHILD=serve", "CTIBRIDGE_LISTEN="+addr, "CTIBRIDGE_DATABASE="+db,
		"CTIBRIDGE_SN_INSTANCE="+sn, "CTIBRIDGE_SN_USERNAME=cti_integration", "CTIBRIDGE_SN_PASSWORD=cti_integration",
		"CTIBRIDGE_API_KEYS="+childKey, "CTIBRIDGE_RATE_PER_KEY=-1", "CTIBRIDGE_SN_REQUESTS_PER_HOUR=-1", "CTIBRIDGE_LOG_LEVEL=error")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("serve did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestKilledMidRunLosesAndDoublesNothing: events accepted by a bridge that
// is then killed with SIGKILL (no graceful shutdown) all reach ServiceNow
// after a restart, each call as exactly one interaction.
func TestKilledMidRunLosesAndDoublesNothing(t *testing.T) {
	sim := snowsim.New(snowsim.Options{Faults: snowsim.Faults{Latency: 40 * time.Millisecond}})
	ts := httptest.NewServer(sim)
	defer ts.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	db := filepath.Join(t.TempDir(), "bridge.db")

	child := startServe(t, addr, db, ts.URL)
	const calls = 80
	var wg sync.WaitGroup
	errs := make(chan error, calls*3)
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprint(50000 + i)
			for _, ev := range []string{"queued", "answered", "released"} {
				body := `{"ani":"+1 312 555 01` + fmt.Sprintf("%02d", i) + `","agentUserName":"jdoe"}`
				req, _ := http.NewRequest("POST", "http://"+addr+"/v1/contacts/"+id+"/"+ev, strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+childKey)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("%s %s: %d", id, ev, resp.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("before the kill: %v", err)
	}
	// Every event is accepted (durable). Kill the bridge once ServiceNow
	// has part of them, with writes in flight.
	for wait := time.Now().Add(10 * time.Second); len(sim.Records("interaction")) < calls/4 && time.Now().Before(wait); {
		time.Sleep(5 * time.Millisecond)
	}
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	before := len(sim.Records("interaction"))
	t.Logf("killed with %d of %d interactions in ServiceNow", before, calls)
	if before == calls {
		t.Log("every call reached ServiceNow before the kill; the restart path is still checked")
	}

	child = startServe(t, addr, db, ts.URL)
	stopped := false
	defer func() {
		if !stopped {
			child.Process.Kill()
			child.Wait()
		}
	}()
	deadline := time.Now().Add(90 * time.Second)
	for i := range calls {
		id := fmt.Sprint(50000 + i)
		for {
			req, _ := http.NewRequest("GET", "http://"+addr+"/v1/contacts/"+id, nil)
			req.Header.Set("Authorization", "Bearer "+childKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var st lifecycle.Status
			json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if st.InSync {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("call %s lost after the kill: %+v", id, st)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// A graceful stop exits 0.
	child.Process.Signal(syscall.SIGTERM)
	if err := child.Wait(); err != nil {
		t.Errorf("serve after SIGTERM: %v, want exit status 0", err)
	}
	stopped = true
	recs := sim.Records("interaction")
	if len(recs) != calls {
		t.Fatalf("%d interactions, want exactly %d", len(recs), calls)
	}
	for _, r := range recs {
		if r["state"] != "closed_complete" {
			t.Errorf("%s: state %s", r["number"], r["state"])
		}
	}
}
