package bridge

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ctibridge/ctibridge/cxone"
	"github.com/ctibridge/ctibridge/cxonepoll"
	"github.com/ctibridge/ctibridge/loginlimit"
	"github.com/ctibridge/ctibridge/servicenow"
	"github.com/ctibridge/ctibridge/store"
)

// metrics are the bridge's Prometheus series. Labels carry no call data and no
// credentials: endpoints, tables, methods, statuses and outcomes only.
type metrics struct {
	reg *prometheus.Registry

	intake      *prometheus.HistogramVec
	jobs        *prometheus.HistogramVec
	snRequests  *prometheus.HistogramVec
	snRefreshes *prometheus.CounterVec
	cxRequests  *prometheus.HistogramVec
	cxPolls     *prometheus.HistogramVec // CXone polls by API and outcome
	cxContacts  *prometheus.CounterVec   // contacts the polls returned
	cxPollLag   prometheus.Gauge         // how far the poll cursor is behind now
	events      *prometheus.CounterVec
	commits     prometheus.Histogram   // the store's commits (each Studio event waits for one)
	logins      *prometheus.CounterVec // failed console and admin logins
	throttled   *prometheus.CounterVec // logins refused unchecked by the limiter

	lastSNOK atomic.Int64 // unix ms of the last ServiceNow answer below 500
	lastSNAt atomic.Int64 // unix ms of the last ServiceNow request
	recent   *series      // for the console chart
}

func newMetrics(b *Bridge) *metrics {
	m := &metrics{reg: prometheus.NewRegistry(), recent: newSeries(6 * 60)}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.intake = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "ctibridge_intake_request_duration_seconds", Help: "Studio API requests by endpoint and HTTP status.",
		Buckets: []float64{.0005, .001, .0015, .002, .003, .005, .0075, .01, .02, .05, .1, .25, .5, 1, 2.5}, // fine around a few milliseconds, where Studio requests are answered
	}, []string{"endpoint", "status"})
	m.jobs = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "ctibridge_reconcile_duration_seconds", Help: "Reconcile attempts by outcome (synced, retry, parked).",
		Buckets: prometheus.DefBuckets,
	}, []string{"outcome"})
	m.snRequests = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "ctibridge_servicenow_request_duration_seconds", Help: "ServiceNow requests by table, method and HTTP status (0 = no answer).",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"table", "method", "status"})
	m.snRefreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ctibridge_servicenow_token_refreshes_total", Help: "OAuth token requests by outcome.",
	}, []string{"outcome"})
	m.cxRequests = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "ctibridge_cxone_request_duration_seconds", Help: "CXone requests by operation (token, discovery, agent...) and HTTP status (0 = no answer).",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"op", "status"})
	m.cxPolls = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "ctibridge_cxone_poll_duration_seconds", Help: "CXone polls (cxone.poll) by API (active-contacts, completed-contacts) and outcome (ok, error).",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"op", "outcome"})
	m.cxContacts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ctibridge_cxone_poll_contacts_total", Help: "Contacts the CXone polls returned, by API.",
	}, []string{"op"})
	m.cxPollLag = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ctibridge_cxone_poll_lag_seconds", Help: "How far the CXone poll cursor is behind now, after the last poll.",
	})
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ctibridge_events_total", Help: "Studio events made durable, by kind and result (accepted, duplicate).",
	}, []string{"kind", "result"})
	m.commits = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "ctibridge_store_commit_duration_seconds",
		Help:    "Commits of the store's write transactions: on SQLite the write-ahead log's write and fsync, on PostgreSQL the round trip until the server has flushed its log. Every Studio event waits for one.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	})
	m.logins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ctibridge_login_failures_total", Help: "Failed logins (wrong user name or password) by surface (console, admin).",
	}, []string{"surface"})
	m.throttled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ctibridge_login_throttled_total", Help: "Logins refused without checking the password, by surface and the limit that refused them (address, overall).",
	}, []string{"surface", "limit"})
	for _, outcome := range []string{"ok", "error"} {
		m.snRefreshes.WithLabelValues(outcome) // exported at 0 before the first token
	}
	for _, surface := range []string{surfaceConsole, surfaceAdmin} {
		m.logins.WithLabelValues(surface)
		for _, limit := range []loginlimit.Scope{loginlimit.ScopeAddress, loginlimit.ScopeOverall} {
			m.throttled.WithLabelValues(surface, string(limit))
		}
	}
	m.reg.MustRegister(m.intake, m.jobs, m.snRequests, m.snRefreshes, m.cxRequests, m.cxPolls, m.cxContacts, m.cxPollLag, m.events, m.commits, m.logins, m.throttled, &stateCollector{b: b})
	return m
}

func (m *metrics) observeIntake(endpoint string, status int, d time.Duration) {
	m.intake.WithLabelValues(endpoint, strconv.Itoa(status)).Observe(d.Seconds())
}

// observeEvent counts a durable event; a new queued event is a new call.
func (m *metrics) observeEvent(kind string, duplicate bool) {
	result := "accepted"
	if duplicate {
		result = "duplicate"
	}
	m.events.WithLabelValues(kind, result).Inc()
	if kind == "queued" && !duplicate {
		m.recent.add(time.Now(), func(p *point) { p.calls++ })
	}
}

func (m *metrics) observeCommit(d time.Duration) { m.commits.Observe(d.Seconds()) }

// JobDone implements lifecycle.Observer.
func (m *metrics) JobDone(outcome string, d time.Duration) {
	m.jobs.WithLabelValues(outcome).Observe(d.Seconds())
}

func (m *metrics) observeServiceNow(ri servicenow.RequestInfo) {
	now := time.Now()
	if ri.Op == "oauth" {
		outcome := "ok"
		if ri.Err != nil || ri.Status >= 400 {
			outcome = "error"
		}
		m.snRefreshes.WithLabelValues(outcome).Inc()
		return
	}
	m.snRequests.WithLabelValues(ri.Table, ri.Method, strconv.Itoa(ri.Status)).Observe(ri.Duration.Seconds())
	m.lastSNAt.Store(now.UnixMilli())
	if ri.Err == nil || (ri.Status > 0 && ri.Status < 500 && ri.Status != 429) {
		m.lastSNOK.Store(now.UnixMilli())
	}
	m.recent.add(now, func(p *point) {
		p.requests++
		p.latency += ri.Duration
		if ri.Status == 0 || ri.Status >= 400 {
			p.errors++
		}
	})
}

func (m *metrics) observeCXone(ri cxone.RequestInfo) {
	m.cxRequests.WithLabelValues(ri.Op, strconv.Itoa(ri.Status)).Observe(ri.Duration.Seconds())
}

func (m *metrics) observePoll(p cxonepoll.PollInfo) {
	outcome := "ok"
	if p.Err != nil {
		outcome = "error"
	}
	m.cxPolls.WithLabelValues(p.Op, outcome).Observe(p.Duration.Seconds())
	m.cxContacts.WithLabelValues(p.Op).Add(float64(p.Contacts))
	if p.Err == nil && p.Op == "active-contacts" {
		m.cxPollLag.Set(p.Lag.Seconds())
	}
}

// stateCollector reads gauges at scrape time: queue, error log, budget.
type stateCollector struct{ b *Bridge }

var (
	descJobs     = prometheus.NewDesc("ctibridge_jobs", "Calls by queue state (pending, running, retrying, parked).", []string{"state"}, nil)
	descErrors   = prometheus.NewDesc("ctibridge_error_log_open", "Open entries in the integration error log by severity.", []string{"severity"}, nil)
	descBudget   = prometheus.NewDesc("ctibridge_servicenow_budget_requests", "ServiceNow request budget: limit per hour and used in the last hour.", []string{"kind"}, nil)
	descInFlight = prometheus.NewDesc("ctibridge_servicenow_in_flight", "ServiceNow requests in flight.", nil, nil)
	descConc     = prometheus.NewDesc("ctibridge_servicenow_concurrency_limit", "ServiceNow requests allowed in flight now: the adaptive limit (cap: maxConcurrent).", nil, nil)
	descConcMax  = prometheus.NewDesc("ctibridge_servicenow_concurrency_max", "The most ServiceNow requests the adaptive limit may allow in flight (maxConcurrent).", nil, nil)
	descOverload = prometheus.NewDesc("ctibridge_servicenow_overloaded_total", "429s, 503s and timeouts from ServiceNow, each of which cut the concurrency limit.", nil, nil)
	desc429      = prometheus.NewDesc("ctibridge_servicenow_throttled_total", "429 answers from ServiceNow.", nil, nil)
	descBackoff  = prometheus.NewDesc("ctibridge_servicenow_backoff_seconds", "Seconds until the client may call ServiceNow again after a 429.", nil, nil)
	descCache    = prometheus.NewDesc("ctibridge_cache_lookups_total", "Caller and agent cache lookups by result.", []string{"cache", "result"}, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descJobs, descErrors, descBudget, descInFlight, descConc, descConcMax, descOverload, desc429, descBackoff, descCache} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if n, err := c.b.DB.Counts(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(descJobs, prometheus.GaugeValue, float64(n.Pending), "pending")
		ch <- prometheus.MustNewConstMetric(descJobs, prometheus.GaugeValue, float64(n.Running), "running")
		ch <- prometheus.MustNewConstMetric(descJobs, prometheus.GaugeValue, float64(n.Retrying), "retrying")
		ch <- prometheus.MustNewConstMetric(descJobs, prometheus.GaugeValue, float64(n.Parked), "parked")
	}
	for _, sev := range []string{store.SeverityError, store.SeverityWarning} {
		if n, err := c.b.DB.CountErrors(ctx, store.ErrorFilter{OpenOnly: true, Severity: sev}); err == nil {
			ch <- prometheus.MustNewConstMetric(descErrors, prometheus.GaugeValue, float64(n), sev)
		}
	}
	bs := c.b.SN.Budget()
	ch <- prometheus.MustNewConstMetric(descBudget, prometheus.GaugeValue, float64(bs.LimitPerHour), "limit_per_hour")
	ch <- prometheus.MustNewConstMetric(descBudget, prometheus.GaugeValue, float64(bs.UsedLastHour), "used_last_hour")
	ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(bs.InFlight))
	ch <- prometheus.MustNewConstMetric(descConc, prometheus.GaugeValue, float64(bs.ConcurrencyLimit))
	ch <- prometheus.MustNewConstMetric(descConcMax, prometheus.GaugeValue, float64(bs.MaxConcurrent))
	ch <- prometheus.MustNewConstMetric(descOverload, prometheus.CounterValue, float64(bs.Overloaded))
	ch <- prometheus.MustNewConstMetric(desc429, prometheus.CounterValue, float64(bs.Throttled429))
	ch <- prometheus.MustNewConstMetric(descBackoff, prometheus.GaugeValue, max(0, time.Until(bs.BackoffUntil).Seconds()))
	for name, cs := range c.b.cacheStats() {
		ch <- prometheus.MustNewConstMetric(descCache, prometheus.CounterValue, float64(cs.Hits), name, "hit")
		ch <- prometheus.MustNewConstMetric(descCache, prometheus.CounterValue, float64(cs.Misses), name, "miss")
	}
}
