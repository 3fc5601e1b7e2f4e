// Package bridge assembles a running ctibridge from its configuration: the
// store, the ServiceNow client, caller and agent lookups, the reconciler, the
// Studio API, the console and the operational endpoints. The serve and demo
// commands and the end-to-end tests all start a bridge through this package,
// so what is tested is what runs.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/ctibridge/ctibridge"

	"github.com/ctibridge/ctibridge/api"
	"github.com/ctibridge/ctibridge/callerid"
	"github.com/ctibridge/ctibridge/config"
	"github.com/ctibridge/ctibridge/cxonepoll"
	"github.com/ctibridge/ctibridge/lifecycle"
	"github.com/ctibridge/ctibridge/loginlimit"
	"github.com/ctibridge/ctibridge/servicenow"
	"github.com/ctibridge/ctibridge/store"
)

// Bridge is a configured, not yet running, ctibridge.
type Bridge struct {
	cfg    *config.Config
	log    *slog.Logger
	DB     *store.DB
	SN     *servicenow.Client
	Rec    *lifecycle.Reconciler
	Intake *lifecycle.Intake
	Errors *lifecycle.ErrorLog
	api    *api.Server
	ops    *ops
	logins *logins
	pop    ctibridge.ScreenPop
	poll   *cxonepoll.Poller // nil unless cxone.poll is set
}

// New builds a bridge: it opens (and migrates) the store and prepares the
// ServiceNow client. Nothing is contacted yet beyond the database.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Bridge, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := CheckConfig(cfg); err != nil {
		return nil, err
	}
	env := cfg.Selected()
	b := &Bridge{cfg: cfg, log: log}
	b.ops = newOps(b)
	b.logins = &logins{lim: loginlimit.New(loginlimit.Options{}), log: log.With("component", "login"), m: b.ops.metrics}

	db, err := store.Open(ctx, cfg.Database)
	if err != nil {
		return nil, err
	}
	b.DB = db
	db.ObserveCommits(b.ops.metrics.observeCommit)

	sn, err := servicenow.New(b.clientConfig(env, lifecycle.DBWarner{DB: db, Log: log.With("component", "servicenow")}))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("servicenow: %w", err)
	}
	b.SN = sn

	pop, err := ctibridge.NewScreenPop(env.Instance, env.Workspace)
	if err != nil {
		db.Close()
		return nil, err
	}
	b.pop = pop
	lc := b.lifecycleConfig()
	agents, err := b.newAgentFinder(sn)
	if err != nil {
		db.Close()
		return nil, err
	}
	b.Rec = lifecycle.NewReconciler(lc, lifecycle.Deps{
		DB: db, SN: sn, Callers: newCallerFinder(cfg, sn, lifecycle.DBWarner{DB: db, Log: log.With("component", "callerid")}), Agents: agents, Logger: log.With("component", "reconciler"),
		Observer: b.ops.metrics, Normalize: func(ani string) string { return callerid.Parse(ani, cfg.Callers.Region).E164 },
	})
	b.Intake = lifecycle.NewIntake(db, lc, pop, b.Rec)
	b.Errors = lifecycle.NewErrorLog(db, b.Rec.Wake)
	if b.poll, err = b.newPoller(); err != nil {
		db.Close()
		return nil, err
	}
	keys, err := APIKeys(cfg)
	if err != nil {
		db.Close()
		return nil, err
	}
	b.api = api.New(b.Intake, api.Options{Keys: keys, Logger: log.With("component", "api"), Observe: b.ops.metrics.observeIntake,
		OnEvent: b.ops.metrics.observeEvent, RatePerKey: max(0, cfg.Security.RatePerKey), Burst: cfg.Security.Burst, HMACKey: cfg.Security.HMACSecret})
	return b, nil
}

func (b *Bridge) lifecycleConfig() lifecycle.Config {
	l := b.cfg.Lifecycle
	return lifecycle.Config{
		Namespace: l.Namespace, States: l.States, KeepOpen: l.KeepOpen, FieldMap: l.FieldMap,
		Workers: b.workers(), MaxBackoff: l.MaxBackoff, AlertAfter: l.AlertAfter, GiveUpAfter: l.GiveUp, Retention: l.Retention,
		Lease: l.Lease, JobTimeout: l.JobTimeout, ShutdownGrace: b.drainTime(),
	}
}

// workers is the number of reconciler workers: as configured, or by default
// one for each request the ServiceNow client may have in flight, so that the
// client's adaptive limit, not the workers, decides how much is sent at once
// (a worker has one request in flight most of the time, two while the caller
// and agent lookups run side by side).
func (b *Bridge) workers() int {
	if b.cfg.Lifecycle.Workers > 0 {
		return b.cfg.Lifecycle.Workers
	}
	return b.cfg.Selected().MaxConcurrent
}

// drainTime is the part of the shutdown timeout that requests in flight and
// running ServiceNow attempts get; the rest is for recording the outcome of
// cancelled attempts and closing the store.
func (b *Bridge) drainTime() time.Duration {
	return max(b.cfg.ShutdownTimeout-5*time.Second, b.cfg.ShutdownTimeout/2)
}

func (b *Bridge) clientConfig(env *config.Environment, warn ctibridge.Warner) servicenow.Config {
	return servicenow.Config{
		Instance: env.Instance, Auth: servicenow.NewAuth(env.Auth.Method(), env.Auth.Username, env.Auth.Password, env.Auth.ClientID, env.Auth.ClientSecret), RequestsPerHour: env.RequestsPerHour, Burst: env.Burst,
		MaxConcurrent: env.MaxConcurrent, Timeout: env.Timeout, Logger: b.log.With("component", "servicenow"),
		UserAgent: "ctibridge", Observe: b.ops.metrics.observeServiceNow, NoBatch: env.Batch == "off", Warner: warn,
	}
}

// Handler is everything served on the main listener.
func (b *Bridge) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v1/", b.api)
	mux.Handle("GET /openapi.json", api.OpenAPI())
	b.ops.register(mux, b.cfg.AdminListen == "")
	return mux
}

// AdminHandler is what the admin listener serves when one is configured.
func (b *Bridge) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	b.ops.register(mux, true)
	return mux
}

// Serve runs the reconciler and serves ln (and admin, if not nil) until ctx
// ends, then shuts down within the configured shutdown timeout: listeners
// stop taking requests and workers stop claiming calls at once; requests in
// flight and running ServiceNow attempts get most of the timeout to finish,
// then attempts are cancelled and their calls released (due at once for the
// next start or another bridge).
func (b *Bridge) Serve(ctx context.Context, ln, admin net.Listener) error {
	servers := []*http.Server{newServer(b.Handler())}
	listeners := []net.Listener{ln}
	if admin != nil {
		servers = append(servers, newServer(b.AdminHandler()))
		listeners = append(listeners, admin)
	}
	if t := b.cfg.TLS; t.CertFile != "" {
		certs, err := newCertReloader(t.CertFile, t.KeyFile)
		if err != nil {
			return err
		}
		for i := range listeners {
			listeners[i] = certs.listener(listeners[i])
		}
	}
	errc := make(chan error, len(servers)+1)
	var wg sync.WaitGroup
	for i, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(listeners[i]); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	recCtx, stopRec := context.WithCancel(context.WithoutCancel(ctx))
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := b.Rec.Run(recCtx); err != nil {
			errc <- err
		}
	}()
	if b.poll != nil {
		wg.Go(func() { b.poll.Run(recCtx) })
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	stopRec() // the reconciler gives its attempts drainTime, then cancels them
	shutCtx, cancel := context.WithTimeout(context.Background(), b.drainTime())
	defer cancel()
	var drain sync.WaitGroup
	for _, srv := range servers {
		drain.Go(func() {
			if srv.Shutdown(shutCtx) != nil {
				srv.Close() // whatever is still open after the drain
			}
		})
	}
	drain.Wait()
	wg.Wait()
	return err
}

// Close releases the store.
func (b *Bridge) Close() error { return b.DB.Close() }

// newServer sets timeouts so slow or stalled clients cannot hold connections.
func newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
}

// APIKeys checks the configured Studio API keys and builds the key set;
// an error names the key at fault.
func APIKeys(cfg *config.Config) (*api.Keys, error) {
	hashed := make([]api.Key, len(cfg.APIKeys))
	for i, k := range cfg.APIKeys {
		hashed[i] = api.Key(k)
	}
	return api.NewKeys(hashed, cfg.PlainAPIKeys)
}

// CheckConfig checks what the configuration's owners check beyond the
// configuration file's own rules: the Studio API keys and the callers'
// region. Errors name the key at fault.
func CheckConfig(cfg *config.Config) error {
	_, err := APIKeys(cfg)
	return errors.Join(err, callerid.CheckRegion(cfg.Callers.Region))
}

// OpenErrorLog opens the configured store for the error log alone (the
// command line's errors list and retry); a running bridge picks retried
// calls up within its poll interval. Close the store with the function
// returned.
func OpenErrorLog(ctx context.Context, cfg *config.Config) (*lifecycle.ErrorLog, func() error, error) {
	db, err := store.Open(ctx, cfg.Database)
	if err != nil {
		return nil, nil, err
	}
	return lifecycle.NewErrorLog(db, nil), db.Close, nil
}

// Backup copies the configured SQLite store to file while bridges may be
// serving it (see store.Backup).
func Backup(ctx context.Context, cfg *config.Config, file string) error {
	return store.Backup(ctx, cfg.Database, file)
}
