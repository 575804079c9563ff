package input

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/metrics"
)

func TestStatusLine(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	prev := metrics.Snapshot{AuditEvents: 100, Bytes: 1000}
	now := metrics.Snapshot{Cluster: "prod", Mode: "search", Connected: true, CaughtUp: true, AuditEvents: 1100, Bytes: 901000,
		Retries: 2, IdentityExpiry: at.Add(time.Hour)}
	assert.Equal(t, `status: caught up (search, cluster "prod"); in the last 1m0s: 1000 audit events, 900.0 kB; lag 0s; 0 records queued; 2 retries; identity valid until 2026-05-01T13:00:00Z`,
		statusLine(prev, now, time.Minute, at))

	now = metrics.Snapshot{Cluster: "prod", Mode: "bulk", Connected: true, AuditEvents: 5, SessionEvents: 30, SessionsActive: 2, SessionsPending: 1,
		NewestEvent: at.Add(-10 * time.Minute), QueuedRecords: 7}
	assert.Equal(t, `status: exporting (bulk, cluster "prod"); in the last 1m0s: 5 audit events, 30 session events (2 recordings streaming, 1 waiting), 0 B; lag 10m0s; 7 records queued`,
		statusLine(metrics.Snapshot{}, now, time.Minute, at))
	assert.Contains(t, statusLine(metrics.Snapshot{}, metrics.Snapshot{}, time.Minute, at), "status: disconnected (not started")
	assert.Contains(t, statusLine(metrics.Snapshot{}, metrics.Snapshot{Paused: true}, time.Minute, at), "status: paused by Fluent Bit")
	assert.Contains(t, statusLine(metrics.Snapshot{}, metrics.Snapshot{Blocked: true}, time.Minute, at), "status: blocked (see the error logged)")
}
