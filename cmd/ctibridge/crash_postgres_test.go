package main

import (
	"database/sql"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge/internal/pgtest"
)

// crashDatabase creates a database of its own on the test server, dropped
// when the test ends, and returns its URL and a connection to it for
// looking at the leases.
func crashDatabase(t *testing.T) (string, *sql.DB) {
	t.Helper()
	dsn := pgtest.Database(t, "the PostgreSQL crash tests", "ctibridge_crash")
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return dsn, db
}

// leaseConfig writes a configuration file that sets lifecycle.lease, and
// jobTimeout to half of it.
func leaseConfig(t *testing.T, lease time.Duration) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ctibridge.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf("lifecycle:\n  lease: %s\n  jobTimeout: %s\n", lease, lease/2)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type lease struct {
	masterID, owner string
	until, version  int64
}

// leases lists the calls leased now; leases are kept on the database's clock.
func leases(db *sql.DB) ([]lease, error) {
	rows, err := db.Query(`SELECT master_id, lease_owner, lease_until, version FROM contacts
		WHERE lease_until > (extract(epoch from clock_timestamp()) * 1000)::bigint`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []lease
	for rows.Next() {
		var l lease
		if err := rows.Scan(&l.masterID, &l.owner, &l.until, &l.version); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// TestThreeBridgesOnePostgresOneKilled: three bridges share one PostgreSQL
// database, Studio's events for each call spread over all three. One is
// killed with SIGKILL while it holds calls; the other two take those calls
// over once their lease (6s here) expires and finish every call.
func TestThreeBridgesOnePostgresOneKilled(t *testing.T) {
	start := time.Now()
	seed := crashSeed(t)
	rng := mrand.New(mrand.NewPCG(seed, seed^0x5eed))
	dbURL, db := crashDatabase(t)
	sim, simURL := crashSimulator(t, 120*time.Millisecond) // slow enough that every bridge holds calls at once
	const leaseFor, workers = 6 * time.Second, 8
	cfg := leaseConfig(t, leaseFor)
	var bridges []*serveChild
	var urls []string
	for i := range 3 {
		c := newServeChild(t, fmt.Sprintf("bridge %d", i), map[string]string{"CTIBRIDGE_CONFIG": cfg, "CTIBRIDGE_DATABASE": dbURL,
			"CTIBRIDGE_SN_INSTANCE": simURL, "CTIBRIDGE_WORKERS": fmt.Sprint(workers)})
		if err := c.start(); err != nil {
			t.Fatal(err)
		}
		bridges, urls = append(bridges, c), append(urls, c.url())
	}

	plan := planCalls(rng, "pg3-", 300)
	st := newStudio(urls...)
	total := eventsToSend(plan)
	type kill struct {
		at     time.Time
		leased []lease
		err    error
	}
	killed := make(chan kill, 1)
	sent := make(chan struct{})
	go func() {
		// Kill bridge 0 once a third of the events are in and more calls
		// are leased than the other two bridges' workers can hold: some of
		// them are bridge 0's.
		for {
			if st.acked.Load() >= total/3 {
				ls, err := leases(db)
				if err != nil {
					st.aborted.Store(true)
					killed <- kill{err: err}
					return
				}
				if len(ls) > 2*workers {
					break
				}
			}
			select {
			case <-sent:
				killed <- kill{err: fmt.Errorf("never saw more than %d calls leased at once while events flowed", 2*workers)}
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
		bridges[0].kill()
		k := kill{at: time.Now()}
		k.leased, k.err = leases(db)
		killed <- k
	}()
	playErr := st.play(plan, 8)
	close(sent)
	k := <-killed
	if k.err != nil {
		t.Fatal(k.err)
	}
	if playErr != nil {
		t.Fatal(playErr)
	}
	sendDone := time.Since(start)

	// The survivors are the bridges that claim calls after the kill; the
	// calls leased at the kill by any other were the killed bridge's.
	prefix := func(owner string) string { return strings.SplitN(owner, "-", 3)[1] }
	survivors := map[string]bool{}
	var seenErr error
	if !waitFor(30*time.Second, func() bool {
		ls, err := leases(db)
		if err != nil {
			seenErr = err
			return false
		}
		for _, l := range ls {
			if l.until > k.at.Add(leaseFor).UnixMilli() {
				survivors[prefix(l.owner)] = true
			}
		}
		return len(survivors) >= 2
	}) {
		t.Fatalf("after the kill only %d bridge(s) claimed calls, want the 2 survivors (%v)", len(survivors), seenErr)
	}
	if len(survivors) > 2 {
		t.Fatalf("%d bridges claimed calls after one of three was killed", len(survivors))
	}
	var orphans []lease
	for _, l := range k.leased {
		if !survivors[prefix(l.owner)] {
			orphans = append(orphans, l)
		}
	}
	t.Logf("at the kill %d calls were leased, %d of them by the killed bridge", len(k.leased), len(orphans))
	if len(orphans) == 0 {
		t.Fatalf("the killed bridge held no call at the kill (%d leased, the survivors have %d workers)", len(k.leased), 2*workers)
	}
	// Each of the killed bridge's calls is finished by the others within
	// the lease bound: its lease expiry plus a few seconds of work.
	const slack = 5 * time.Second
	var last time.Duration
	for _, o := range orphans {
		deadline := time.UnixMilli(o.until).Add(slack)
		var synced int64
		ok := waitFor(time.Until(deadline), func() bool {
			err := db.QueryRow(`SELECT synced_version FROM contacts WHERE master_id = $1`, o.masterID).Scan(&synced)
			return err == nil && synced >= o.version
		})
		if !ok {
			t.Errorf("call %s, leased by the killed bridge until %s, not finished by the others %s after that (synced version %d, want %d)",
				o.masterID, time.UnixMilli(o.until).Format("15:04:05.000"), slack, synced, o.version)
			continue
		}
		last = max(last, time.Since(k.at))
	}
	if len(orphans) > 0 {
		t.Logf("the survivors finished the killed bridge's calls %s after the kill (lease %s)", last.Round(time.Millisecond), leaseFor)
	}

	statuses, err := st.waitSynced(plan, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	synced := time.Since(start)
	for _, b := range bridges[1:] {
		if err := b.stop(); err != nil {
			t.Errorf("%s after SIGTERM: %v, want exit status 0", b.name, err)
		}
	}
	verifyCalls(t, sim, plan, statuses)
	t.Logf("%d calls, %d events over 3 bridges (%d refused connections, %d 5xx); all sent after %s, all in sync after %s; %d ServiceNow requests",
		len(plan), total, st.refused.Load(), st.unavailable.Load(), sendDone.Round(time.Millisecond), synced.Round(time.Millisecond), sim.Stats().Total)
}

// postgresCluster is the local cluster serving the test DSN, driven with
// pg_ctlcluster.
type postgresCluster struct{ version string }

// localCluster finds the Debian cluster "main" listening on the DSN's port.
func localCluster(t *testing.T, dsn string) postgresCluster {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	dirs, err := os.ReadDir("/etc/postgresql")
	if err != nil {
		t.Fatalf("CTIBRIDGE_TEST_PG_RESTART=1 needs a local Debian PostgreSQL cluster (/etc/postgresql): %v", err)
	}
	portLine := regexp.MustCompile(`(?m)^\s*port\s*=\s*(\d+)`)
	for _, d := range dirs {
		conf, err := os.ReadFile(filepath.Join("/etc/postgresql", d.Name(), "main", "postgresql.conf"))
		if err != nil {
			continue
		}
		p := "5432"
		if m := portLine.FindSubmatch(conf); m != nil {
			p = string(m[1])
		}
		if p == port {
			return postgresCluster{version: d.Name()}
		}
	}
	t.Fatalf("no cluster under /etc/postgresql/*/main listens on port %s (CTIBRIDGE_TEST_POSTGRES)", port)
	return postgresCluster{}
}

func (c postgresCluster) ctl(action string) error {
	out, err := exec.Command("pg_ctlcluster", "--skip-systemctl-redirect", c.version, "main", action).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctlcluster %s main %s: %v: %s", c.version, action, err, out)
	}
	return nil
}

// running reports whether the cluster is up (pg_ctlcluster status exits 0).
func (c postgresCluster) running() bool {
	return exec.Command("pg_ctlcluster", "--skip-systemctl-redirect", c.version, "main", "status").Run() == nil
}

// answer is one reply the intake gave (status 0: none).
type answer struct {
	sent, got time.Time
	status    int
}

// TestPostgresRestartedMidRun: PostgreSQL is stopped while events flow to
// two bridges. While it is down the intake answers 503, never 2xx; once it
// is back the bridges reconnect on their own, Studio's retries get in, and
// every acknowledged event reaches ServiceNow.
//
// It stops the shared server, so it runs only with CTIBRIDGE_TEST_PG_RESTART=1,
// on its own: go test -run TestPostgresRestartedMidRun ./cmd/ctibridge
func TestPostgresRestartedMidRun(t *testing.T) {
	dsn := pgtest.Server(t, "the PostgreSQL crash tests")
	if os.Getenv("CTIBRIDGE_TEST_PG_RESTART") != "1" {
		t.Skip("SKIP: CTIBRIDGE_TEST_PG_RESTART is not 1; this test stops and starts the PostgreSQL server, " +
			"which would break other packages' tests running at the same time, so CI runs it alone")
	}
	cluster := localCluster(t, dsn)
	start := time.Now()
	seed := crashSeed(t)
	rng := mrand.New(mrand.NewPCG(seed, seed^0x5eed))
	dbURL, db := crashDatabase(t)
	// Registered after the database, so it runs before the drop: whatever
	// happens, the server is started again.
	t.Cleanup(func() {
		if !cluster.running() {
			if err := cluster.ctl("start"); err != nil {
				t.Errorf("starting PostgreSQL again: %v", err)
			}
		}
	})
	sim, simURL := crashSimulator(t, 5*time.Millisecond)
	var bridges []*serveChild
	var urls []string
	for i := range 2 {
		c := newServeChild(t, fmt.Sprintf("bridge %d", i), map[string]string{"CTIBRIDGE_DATABASE": dbURL, "CTIBRIDGE_SN_INSTANCE": simURL})
		if err := c.start(); err != nil {
			t.Fatal(err)
		}
		bridges, urls = append(bridges, c), append(urls, c.url())
	}

	plan := planCalls(rng, "pgr-", 200)
	st := newStudio(urls...)
	st.deadline = 3 * time.Minute
	var mu sync.Mutex
	var answers []answer
	st.observe = func(sent, got time.Time, status int) {
		mu.Lock()
		answers = append(answers, answer{sent, got, status})
		mu.Unlock()
	}
	total := eventsToSend(plan)
	type outage struct {
		down, up time.Time
		readyz   int // /readyz while down
		err      error
	}
	outc := make(chan outage, 1)
	go func() {
		var o outage
		defer func() {
			if o.err != nil {
				st.aborted.Store(true)
			}
			outc <- o
		}()
		if !waitFor(2*time.Minute, func() bool { return st.acked.Load() >= total/3 }) {
			o.err = fmt.Errorf("only %d of %d events acknowledged before the stop", st.acked.Load(), total)
			return
		}
		if o.err = cluster.ctl("stop"); o.err != nil {
			return
		}
		o.down = time.Now()
		// The server stays down for 3 s and until Studio's retries met a
		// good number of refusals.
		refusedSince := func() int {
			mu.Lock()
			defer mu.Unlock()
			n := 0
			for _, a := range answers {
				if a.sent.After(o.down) && a.status == http.StatusServiceUnavailable {
					n++
				}
			}
			return n
		}
		waitFor(30*time.Second, func() bool { return refusedSince() >= 50 && time.Since(o.down) >= 3*time.Second })
		if resp, err := http.Get(urls[1] + "/readyz"); err == nil {
			o.readyz = resp.StatusCode
			resp.Body.Close()
		}
		o.up = time.Now()
		o.err = cluster.ctl("start")
	}()
	playErr := st.play(plan, 8)
	o := <-outc
	if o.err != nil {
		t.Fatal(o.err)
	}
	if playErr != nil {
		t.Fatal(playErr)
	}
	sendDone := time.Since(start)

	// Every answer to a request sent while the server was down, and
	// answered before it was started again.
	byStatus := map[int]int{}
	mu.Lock()
	for _, a := range answers {
		if a.sent.After(o.down) && a.got.Before(o.up) {
			byStatus[a.status]++
			if a.status/100 == 2 {
				t.Errorf("an event sent %s after PostgreSQL stopped was acknowledged with %d", a.sent.Sub(o.down).Round(time.Millisecond), a.status)
			}
		}
	}
	mu.Unlock()
	t.Logf("PostgreSQL stopped %s after the start, for %s; answers meanwhile by status (0 = none): %v; /readyz answered %d",
		o.down.Sub(start).Round(time.Millisecond), o.up.Sub(o.down).Round(time.Millisecond), byStatus, o.readyz)
	if byStatus[http.StatusServiceUnavailable] == 0 {
		t.Errorf("no 503 while PostgreSQL was down: %v", byStatus)
	}
	if o.readyz != http.StatusServiceUnavailable {
		t.Errorf("/readyz answered %d while PostgreSQL was down, want 503", o.readyz)
	}

	statuses, err := st.waitSynced(plan, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	synced := time.Since(start)
	for _, b := range bridges {
		if err := b.stop(); err != nil {
			t.Errorf("%s after SIGTERM: %v, want exit status 0", b.name, err)
		}
	}
	verifyCalls(t, sim, plan, statuses)
	var pending int
	if err := db.QueryRow(`SELECT COUNT(*) FROM contacts WHERE version > synced_version`).Scan(&pending); err != nil || pending != 0 {
		t.Errorf("%d calls pending in the database (%v), want none", pending, err)
	}
	t.Logf("%d calls, %d events over 2 bridges (%d refused connections, %d 5xx); all sent after %s, all in sync after %s",
		len(plan), total, st.refused.Load(), st.unavailable.Load(), sendDone.Round(time.Millisecond), synced.Round(time.Millisecond))
}
