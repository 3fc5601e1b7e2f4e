package bridge_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ctibridge/ctibridge"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge/bridge/bridgetest"
	"github.com/ctibridge/ctibridge/lifecycle"
	"github.com/ctibridge/ctibridge/snowsim"
)

// smallDisk mounts a 4 MiB tmpfs for the test and unmounts it at the end
// (after everything registered later, such as a bridge using it, has
// stopped). It skips, saying why, where mounting is not allowed.
func smallDisk(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"); err != nil {
		t.Skipf("SKIP: cannot mount a 4 MiB tmpfs to fill up (mount -t tmpfs needs root or CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}

// fill writes to path until the filesystem is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := bytes.Repeat([]byte{0xAA}, 4096)
	for {
		if _, err := f.Write(block); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			break
		}
	}
	// The last partial block too.
	for _, err := f.Write([]byte{0}); err == nil; _, err = f.Write([]byte{0}) {
	}
}

// TestDiskFull: with the SQLite file's disk full, the intake answers 503
// (retry) for every event it cannot store, never 2xx, and does not hang;
// once space returns it accepts events again without a restart, and every
// event it acknowledged, before, during and after, reaches ServiceNow
// promptly, including the calls whose ServiceNow work was under way when the
// disk filled (their outcome could not be recorded then).
func TestDiskFull(t *testing.T) {
	t.Parallel()
	disk := smallDisk(t)
	sim, simURL := bridgetest.Simulator(t, snowsim.Options{})
	cfg := bridgetest.Config(t, simURL, map[string]string{
		"CTIBRIDGE_DATABASE": filepath.Join(disk, "bridge.db"), "CTIBRIDGE_RATE_PER_KEY": "-1",
		"CTIBRIDGE_SN_REQUESTS_PER_HOUR": "-1",
	})
	cfg.Lifecycle.MaxBackoff = 300 * time.Millisecond
	logs := &syncBuffer{}
	_, url := bridgetest.Serve(t, cfg, bridgetest.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	client := &http.Client{Timeout: 20 * time.Second} // a hang fails the test
	post := func(id, kind string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", url+"/v1/contacts/"+id+"/"+kind, bytes.NewReader([]byte(`{"ani":"8015550100","agentUserName":"jdoe"}`)))
		req.Header.Set("Authorization", "Bearer "+bridgetest.Key)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", id, kind, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 && resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("%s %s: %d %s; want 200, or 503 when it cannot be stored", id, kind, resp.StatusCode, body)
		}
		return resp.StatusCode
	}
	ready := func() int {
		t.Helper()
		resp, err := client.Get(url + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitSynced := func(timeout time.Duration, ids ...string) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for _, id := range ids {
			for {
				req, _ := http.NewRequest("GET", url+"/v1/contacts/"+id, nil)
				req.Header.Set("Authorization", "Bearer "+bridgetest.Key)
				resp, err := client.Do(req)
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
					t.Fatalf("call %s not in ServiceNow after %s: %d %+v", id, timeout, resp.StatusCode, st)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}

	// ServiceNow answers slowly, so work is under way when the disk fills.
	sim.SetFaults(snowsim.Faults{Latency: time.Second})
	var before []string
	for i := range 10 {
		id := fmt.Sprint(70000 + i)
		before = append(before, id)
		for _, kind := range []string{"queued", "answered"} {
			if code := post(id, kind); code != 200 {
				t.Fatalf("%s %s with room on disk: %d", id, kind, code)
			}
		}
	}
	filler := filepath.Join(disk, "filler")
	fill(t, filler)
	// Studio keeps sending new calls; each is either stored (200) or
	// refused with 503 for Studio to retry.
	var during, refused []string
	for i := 0; len(refused) < 5; i++ {
		if i == 2000 {
			t.Fatalf("2000 events accepted on a full disk")
		}
		id := fmt.Sprint(71000 + i)
		if post(id, "queued") == 200 {
			during = append(during, id)
		} else {
			refused = append(refused, id)
		}
	}
	t.Logf("disk full: %d events acknowledged (room left in SQLite's files), %d refused with 503", len(during), len(refused))
	if code := ready(); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the disk full: %d, want 503", code)
	}
	// Keep the disk full until an attempt under way has finished and
	// failed to record its outcome.
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(logs.String(), "store: release"); {
		if time.Now().After(deadline) {
			t.Fatalf("no attempt under way finished while the disk was full; log:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// Space is back: the same bridge takes events again at once, Studio's
	// retries of the refused ones included.
	if code := ready(); code != 200 {
		t.Errorf("/readyz with room on disk again: %d, want 200", code)
	}
	all := append(append(append([]string{}, before...), during...), refused...)
	for _, id := range refused {
		if code := post(id, "queued"); code != 200 {
			t.Fatalf("%s queued, retried with room on disk: %d", id, code)
		}
	}
	for _, id := range all {
		for _, kind := range []string{"answered", "released"} {
			if code := post(id, kind); code != 200 {
				t.Fatalf("%s %s with room on disk again: %d", id, kind, code)
			}
		}
	}
	// Well within the 2-minute lease of the attempts that finished
	// while the disk was full.
	waitSynced(30*time.Second, all...)
	for _, id := range all {
		rec, ok := sim.Record("interaction", ctibridge.SysID("ctibridge", id))
		if !ok || rec["state"] != "closed_complete" || rec["assigned_to"] == "" {
			t.Errorf("call %s in ServiceNow: %v (found %v), want closed_complete and assigned", id, rec, ok)
		}
	}
	if n := len(sim.Records("interaction")); n != len(all) {
		t.Errorf("%d interactions, want %d", n, len(all))
	}
}
