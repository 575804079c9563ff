package input

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/metrics"
)

// Snapshot reports the instance's state for the metrics endpoint and the
// status line.
func (x *Instance) Snapshot() metrics.Snapshot {
	s := metrics.Snapshot{
		Input:         x.name,
		Connected:     x.stats.Connected.Load(),
		Paused:        x.Paused(),
		AuditEvents:   x.stats.Records.Load() - x.stats.SessionRecords.Load(),
		SessionEvents: x.stats.SessionRecords.Load(),
		Bytes:         x.stats.Bytes.Load(),
		Retries:       x.stats.Retries.Load(),
		Errors:        x.stats.Errors.Load(),
		Blocked:       x.stats.Blocked.Load(),
	}
	if sec := x.stats.NewestSecond.Load(); sec > 0 {
		s.NewestEvent = time.Unix(sec, 0)
	}
	if sec := x.stats.IdentityExpiry.Load(); sec > 0 {
		s.IdentityExpiry = time.Unix(sec, 0)
	}
	audit, _ := x.audit.Len()
	sessions, _ := x.sessions.Len()
	s.QueuedRecords = audit + sessions
	if r := x.readers.Load(); r != nil {
		s.Cluster, s.Mode, s.CaughtUp = r.cluster, r.mode(), r.caughtUp()
		if r.search != nil {
			s.LateEvents = r.search.Stats.Late.Load()
			s.OversizedSkipped = r.search.Stats.Oversized.Load()
		}
		if r.sessions != nil {
			st := r.sessions.StatsNow()
			s.SessionsActive, s.SessionsPending = st.Active, st.Pending
			s.SessionsExported, s.SessionsGivenUp = st.Exported, st.GivenUp
		}
	}
	return s
}

// statusLoop logs one line about the export every interval.
func (x *Instance) statusLoop(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	prev := x.Snapshot()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := x.Snapshot()
		x.log.Infof("%s", statusLine(prev, now, interval, x.now()))
		prev = now
	}
}

func statusLine(prev, now metrics.Snapshot, interval time.Duration, at time.Time) string {
	var b strings.Builder
	state := "disconnected"
	switch {
	case now.Blocked:
		state = "blocked (see the error logged)"
	case now.Paused:
		state = "paused by Fluent Bit"
	case now.Connected && now.CaughtUp:
		state = "caught up"
	case now.Connected:
		state = "exporting"
	}
	mode := now.Mode
	if mode == "" {
		mode = "not started"
	}
	fmt.Fprintf(&b, "status: %s (%s, cluster %q); in the last %s: %d audit events", state, mode, now.Cluster, interval, now.AuditEvents-prev.AuditEvents)
	if now.SessionEvents > 0 || now.SessionsActive+now.SessionsPending > 0 {
		fmt.Fprintf(&b, ", %d session events (%d recordings streaming, %d waiting)", now.SessionEvents-prev.SessionEvents, now.SessionsActive, now.SessionsPending)
	}
	fmt.Fprintf(&b, ", %s; lag %s; %d records queued", byteSize(now.Bytes-prev.Bytes), now.Lag(at).Round(time.Second), now.QueuedRecords)
	if d := now.Retries - prev.Retries; d > 0 {
		fmt.Fprintf(&b, "; %d retries", d)
	}
	if !now.IdentityExpiry.IsZero() {
		fmt.Fprintf(&b, "; identity valid until %s", now.IdentityExpiry.UTC().Format(time.RFC3339))
	}
	return b.String()
}

func byteSize(n int64) string {
	switch {
	case n >= 1000*1000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1000:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}
