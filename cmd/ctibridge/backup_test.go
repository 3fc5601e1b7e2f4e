package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"github.com/ctibridge/ctibridge"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge/lifecycle"
	"github.com/ctibridge/ctibridge/snowsim"
)

func backupEnv(t *testing.T, database, instance string) {
	t.Setenv("CTIBRIDGE_DATABASE", database)
	t.Setenv("CTIBRIDGE_SN_INSTANCE", instance)
	t.Setenv("CTIBRIDGE_SN_USERNAME", "cti_integration")
	t.Setenv("CTIBRIDGE_SN_PASSWORD", "cti_integration")
	t.Setenv("CTIBRIDGE_API_KEYS", childKey)
}

// TestBackupWhileServing: `ctibridge backup` taken while a bridge serves
// Studio's events is a sound SQLite file, and a bridge started on it after
// the first one dies brings to ServiceNow every event acknowledged before the
// backup began, each call as exactly one interaction.
func TestBackupWhileServing(t *testing.T) {
	sim := snowsim.New(snowsim.Options{Faults: snowsim.Faults{Latency: 20 * time.Millisecond}})
	ts := httptest.NewServer(sim)
	defer ts.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	live, bk := filepath.Join(dir, "live.db"), filepath.Join(dir, "backup.db")
	backupEnv(t, live, ts.URL)

	child := startServe(t, addr, live, ts.URL)
	killed := false
	defer func() {
		if !killed {
			child.Process.Kill()
			child.Wait()
		}
	}()
	type event struct{ id, kind string }
	var (
		mu    sync.Mutex
		acked []event
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	ackedCount := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				id := fmt.Sprint(60000 + g*10000 + n)
				for _, kind := range []string{"queued", "answered", "released"} {
					select {
					case <-stop:
						return
					default:
					}
					req, _ := http.NewRequest("POST", "http://"+addr+"/v1/contacts/"+id+"/"+kind,
						strings.NewReader(`{"ani":"+1 312 555 0100","agentUserName":"jdoe"}`))
					req.Header.Set("Authorization", "Bearer "+childKey)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Errorf("%s %s: %v", id, kind, err)
						return
					}
					resp.Body.Close()
					if resp.StatusCode != 200 {
						t.Errorf("%s %s: %d", id, kind, resp.StatusCode)
						return
					}
					mu.Lock()
					acked = append(acked, event{id, kind})
					mu.Unlock()
				}
			}
		}()
	}
	waitFor := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ackedCount() < n; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) || t.Failed() {
				t.Fatalf("%d events acknowledged, waiting for %d", ackedCount(), n)
			}
		}
	}
	waitFor(90)
	mu.Lock()
	before := append([]event(nil), acked...)
	mu.Unlock()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"backup", bk}, &out, &out); err != nil {
		t.Fatalf("backup while serving: %v\n%s", err, out.String())
	}
	waitFor(len(before) + 60) // events kept flowing during and after it
	close(stop)
	wg.Wait()
	// The bridge dies with work unfinished; the backup is all there is.
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	killed = true
	t.Logf("%d events acknowledged before the backup, %d in all; %s", len(before), ackedCount(), strings.TrimSpace(out.String()))

	raw, err := sql.Open("sqlite", bk)
	if err != nil {
		t.Fatal(err)
	}
	var check string
	if err := raw.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Errorf("PRAGMA integrity_check of the backup: %q, %v", check, err)
	}
	raw.Close()
	if err := run(context.Background(), []string{"backup", bk}, &out, &out); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("a second backup onto the first: %v, want a refusal saying it already exists", err)
	}

	child = startServe(t, addr, bk, ts.URL)
	killed = false
	want := map[string]int{} // events per call acknowledged before the backup
	released := map[string]bool{}
	for _, e := range before {
		want[e.id]++
		released[e.id] = released[e.id] || e.kind == "released"
	}
	deadline := time.Now().Add(90 * time.Second)
	for id, n := range want {
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
			if resp.StatusCode == 200 && st.Events < n {
				t.Fatalf("call %s: the restored store has %d of its events, %d were acknowledged before the backup", id, st.Events, n)
			}
			if st.InSync {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("call %s not in ServiceNow from the restored store: %d %+v", id, resp.StatusCode, st)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	perCall := map[string]int{}
	for _, r := range sim.Records("interaction") {
		perCall[r["sys_id"]]++
	}
	for id := range want {
		sysID := ctibridge.SysID("ctibridge", id)
		if perCall[sysID] != 1 {
			t.Errorf("call %s: %d interactions, want 1", id, perCall[sysID])
			continue
		}
		if rec, _ := sim.Record("interaction", sysID); released[id] && rec["state"] != "closed_complete" {
			t.Errorf("call %s, released before the backup: state %q", id, rec["state"])
		}
	}
	child.Process.Signal(syscall.SIGTERM)
	if err := child.Wait(); err != nil {
		t.Errorf("serve on the backup after SIGTERM: %v", err)
	}
	killed = true
}

func TestBackupRefusesPostgres(t *testing.T) {
	backupEnv(t, "postgres://ctibridge:Sup3rSecret@db.example.com/ctibridge", "https://acme.service-now.com")
	var out bytes.Buffer
	err := run(context.Background(), []string{"backup", filepath.Join(t.TempDir(), "b.db")}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "pg_dump") {
		t.Fatalf("backup of a PostgreSQL database: %v, want a refusal pointing to pg_dump", err)
	}
	if strings.Contains(err.Error()+out.String(), "Sup3rSecret") {
		t.Errorf("the database password was printed: %v %s", err, out.String())
	}
	if err := run(context.Background(), []string{"backup"}, &out, &out); err == nil || !strings.Contains(err.Error(), "name one file") {
		t.Errorf("backup without a file: %v", err)
	}
}
