// Package metrics exposes the inputs' counters in Prometheus text format on
// the address each input names in metrics_listen. Inputs that name the same
// address share one endpoint, told apart by their labels.
package metrics

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Snapshot is what an input reports at one moment.
type Snapshot struct {
	Input, Cluster, Mode string
	Connected, Paused    bool
	CaughtUp             bool
	Blocked              bool  // a fault retrying cannot heal holds the export
	AuditEvents          int64 // handed to Fluent Bit
	SessionEvents        int64
	Bytes                int64
	Retries, Errors      int64
	LateEvents           int64
	OversizedSkipped     int64
	NewestEvent          time.Time // the newest audit event handed over
	IdentityExpiry       time.Time
	QueuedRecords        int
	SessionsActive       int
	SessionsPending      int
	SessionsExported     int64
	SessionsGivenUp      int64
}

// Lag is how far the export is behind: zero while it is caught up with
// nothing waiting, else the age of the newest event handed over.
func (s Snapshot) Lag(now time.Time) time.Duration {
	if s.CaughtUp && s.QueuedRecords == 0 {
		return 0
	}
	if s.NewestEvent.IsZero() {
		return 0
	}
	return max(now.Sub(s.NewestEvent), 0)
}

// Source reports an input's snapshot.
type Source func() Snapshot

var (
	mu      sync.Mutex
	servers = map[string]*server{} // by listen address
)

// server is one endpoint and the inputs it reports; mu guards sources.
type server struct {
	srv     *http.Server
	sources map[*Source]bool
	done    chan struct{}
}

// Register adds an input to the endpoint at listen (host:port), starting it
// if it is the first there. The returned function removes it again and stops
// the endpoint with its last input, within a second.
func Register(listen string, src Source) (func(), error) {
	mu.Lock()
	defer mu.Unlock()
	s := servers[listen]
	if s == nil {
		l, err := net.Listen("tcp", listen)
		if err != nil {
			return nil, fmt.Errorf("metrics_listen %s: %w", listen, err)
		}
		s = &server{sources: map[*Source]bool{}, done: make(chan struct{})}
		reg := prometheus.NewRegistry()
		reg.MustRegister(collector{s})
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			defer close(s.done)
			_ = s.srv.Serve(l)
		}()
		servers[listen] = s
	}
	p := &src
	s.sources[p] = true
	var once sync.Once
	return func() {
		once.Do(func() {
			mu.Lock()
			delete(s.sources, p)
			last := len(s.sources) == 0
			if last {
				delete(servers, listen)
			}
			mu.Unlock()
			if last {
				ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
				defer cancel()
				_ = s.srv.Shutdown(ctx)
				_ = s.srv.Close() // whatever Shutdown left
				<-s.done
			}
		})
	}, nil
}

var (
	labels = []string{"input", "cluster"}
	desc   = func(name, help string, extra ...string) *prometheus.Desc {
		return prometheus.NewDesc("fluentbit_teleport_"+name, help, append(append([]string(nil), labels...), extra...), nil)
	}
	dInfo      = desc("info", "The input's export: cluster and mode.", "mode")
	dEvents    = desc("events_total", "Events handed to Fluent Bit.", "stream")
	dBytes     = desc("bytes_total", "Bytes of records handed to Fluent Bit.")
	dLag       = desc("lag_seconds", "How far the export is behind: 0 while caught up, else the age of the newest audit event handed over.")
	dNewest    = desc("newest_event_timestamp_seconds", "Time of the newest audit event handed over.")
	dConnected = desc("connected", "1 while connected to the Teleport cluster.")
	dPaused    = desc("paused", "1 while Fluent Bit has paused the input (backpressure).")
	dBlocked   = desc("blocked", "1 while a fault that retrying cannot heal holds the export; the log says what to do.")
	dRetries   = desc("retries_total", "Connection or query attempts that failed and were retried.")
	dErrors    = desc("errors_total", "Errors logged.")
	dLate      = desc("late_events_total", "Events found by the settle re-scan after becoming visible late.")
	dOversized = desc("oversized_events_skipped_total", "Events skipped because Teleport cannot return them (over 1 MiB, untrimmable).")
	dExpiry    = desc("identity_expiry_timestamp_seconds", "When the loaded identity's certificate expires.")
	dQueued    = desc("queued_records", "Records fetched and waiting for Fluent Bit.")
	dSessions  = desc("sessions", "Session recordings by state.", "state")
	dSessDone  = desc("sessions_total", "Session recordings finished, by outcome.", "outcome")
)

// collector reports the inputs of one server.
type collector struct{ s *server }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dInfo, dEvents, dBytes, dLag, dNewest, dConnected, dPaused, dBlocked, dRetries, dErrors,
		dLate, dOversized, dExpiry, dQueued, dSessions, dSessDone} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	mu.Lock()
	srcs := make([]Source, 0, len(c.s.sources))
	for p := range c.s.sources {
		srcs = append(srcs, *p)
	}
	mu.Unlock()
	now := time.Now()
	for _, src := range srcs {
		s := src()
		l := []string{s.Input, s.Cluster}
		gauge := func(d *prometheus.Desc, v float64, extra ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append(l, extra...)...)
		}
		counter := func(d *prometheus.Desc, v int64, extra ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append(l, extra...)...)
		}
		gauge(dInfo, 1, s.Mode)
		counter(dEvents, s.AuditEvents, "audit")
		counter(dEvents, s.SessionEvents, "session")
		counter(dBytes, s.Bytes)
		gauge(dLag, s.Lag(now).Seconds())
		if !s.NewestEvent.IsZero() {
			gauge(dNewest, float64(s.NewestEvent.UnixNano())/1e9)
		}
		gauge(dConnected, b2f(s.Connected))
		gauge(dPaused, b2f(s.Paused))
		gauge(dBlocked, b2f(s.Blocked))
		counter(dRetries, s.Retries)
		counter(dErrors, s.Errors)
		counter(dLate, s.LateEvents)
		counter(dOversized, s.OversizedSkipped)
		if !s.IdentityExpiry.IsZero() {
			gauge(dExpiry, float64(s.IdentityExpiry.Unix()))
		}
		gauge(dQueued, float64(s.QueuedRecords))
		gauge(dSessions, float64(s.SessionsActive), "active")
		gauge(dSessions, float64(s.SessionsPending), "pending")
		counter(dSessDone, s.SessionsExported, "exported")
		counter(dSessDone, s.SessionsGivenUp, "given_up")
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
