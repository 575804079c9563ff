package integration

import (
	"strings"
	"testing"
	"time"

	apievents "github.com/gravitational/teleport/api/types/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/flbhost"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/teleportfake"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/testenv"
)

const exportEvents = "/teleport.auditlog.v1.AuditLogService/ExportUnstructuredEvents"

// Where the cluster has bulk export (Teleport Cloud's Athena backend), the
// default export_mode auto uses it, across dates, with filters applied.
func TestBulkExportThroughThePlugin(t *testing.T) {
	e := newEnv(t, teleportfake.Config{BulkExport: true, ChunkSize: 50})
	start := time.Now().Add(-50 * time.Hour).Truncate(time.Second)
	ids := testenv.Seed(e.srv, 50, 1200, start.Add(time.Second), 2*time.Minute)

	h := host(t, flbhost.Options{})
	idx := initOK(t, h, e.props(start, "export_concurrency", "4"))
	_, err := h.Drain(idx, len(ids), 60*time.Second, 0)
	require.NoError(t, err, h.Log())
	assert.ElementsMatch(t, ids, uids(records(t, h)), "every event once; within a date in no particular order")
	assert.Contains(t, h.Log(), "the cluster supports bulk export, so the plugin uses bulk")
	assert.Zero(t, e.srv.CallCount(getEvents), "no search in bulk mode")
	assert.GreaterOrEqual(t, e.srv.CallCount(exportEvents), 24, "1200 events in chunks of 50")

	// A restart continues from the chunk cursors: nothing again.
	_, err = h.Quit()
	require.NoError(t, err)
	more := testenv.Seed(e.srv, 51, 30, time.Now(), time.Millisecond)
	h2 := host(t, flbhost.Options{})
	idx = initOK(t, h2, e.props(start))
	_, err = h2.Drain(idx, len(more), 60*time.Second, 50*time.Millisecond)
	require.NoError(t, err, h2.Log())
	assert.ElementsMatch(t, more, uids(records(t, h2)))
}

func TestBulkExportAppliesTypes(t *testing.T) {
	e := newEnv(t, teleportfake.Config{BulkExport: true})
	start := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	evs := testenv.SeedEvents(e.srv, 52, 600, start.Add(time.Second), 5*time.Second)
	want := testenv.IDs(evs, "user.login")
	require.NotEmpty(t, want)
	require.Less(t, len(want), len(evs), "the seed has other events to leave out")

	h := host(t, flbhost.Options{})
	idx := initOK(t, h, e.props(start, "types", "user.login"))
	_, err := h.Drain(idx, len(want), 30*time.Second, 20*time.Millisecond)
	require.NoError(t, err, h.Log())
	assert.Contains(t, h.Log(), "the cluster supports bulk export, so the plugin uses bulk")
	assert.Zero(t, e.srv.CallCount(getEvents), "no search in bulk mode")
	// Chunks are exported in parallel: the order within a date is free.
	assert.ElementsMatch(t, want, uids(records(t, h)), "types holds in bulk mode (Event Handler bug gravitational/teleport#56099)")
}

// A session.upload event brings the session's recording, tagged so that
// Fluent Bit can route it apart.
func TestSessionRecordingsThroughThePlugin(t *testing.T) {
	for name, cfg := range map[string]teleportfake.Config{
		"unstructured stream":               {},
		"structured fallback (Teleport 13)": {StructuredSessionsOnly: true},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, cfg)
			start := time.Now().Add(-time.Hour).Truncate(time.Second)
			gen := teleportfake.NewGenerator(53)
			rec, upload := gen.Session("sess-e2e", start.Add(time.Minute), 30)
			e.srv.AddSession("sess-e2e", rec)
			e.srv.Append(upload)
			var wantSession []string
			for _, ev := range rec {
				if ev.GetType() != "print" {
					wantSession = append(wantSession, ev.GetID())
				}
			}

			h := host(t, flbhost.Options{})
			idx := initOK(t, h, e.props(start, "sessions", "on"))
			_, err := h.Drain(idx, 1+len(wantSession), 30*time.Second, 20*time.Millisecond)
			require.NoError(t, err, h.Log())
			var audit, session []flbhost.Record
			for _, r := range records(t, h) {
				if r.Body["teleport_stream"] == "session" {
					session = append(session, r)
				} else {
					audit = append(audit, r)
				}
			}
			require.Len(t, audit, 1)
			assert.Equal(t, "session.upload", audit[0].Body["event"])
			assert.NotContains(t, audit[0].Body, "teleport_stream", "audit events stay as Teleport's JSON has them")
			assert.Equal(t, wantSession, uids(session), "in order, without print events")
			for _, r := range session {
				assert.Equal(t, "sess-e2e", r.Body["sid"])
			}
			assert.Contains(t, h.Log(), "exported the recording of session sess-e2e")
		})
	}
}

// An event over the 1 MiB page cap is skipped with a warning naming it; the
// export goes on past it.
func TestOversizedEventIsSkippedAndNamed(t *testing.T) {
	e := newEnv(t, teleportfake.Config{MaxPageBytes: 64 << 10})
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	before := testenv.Seed(e.srv, 54, 20, start.Add(time.Second), time.Second)
	big := &apievents.DatabaseSessionQuery{
		Metadata:      apievents.Metadata{Type: "db.session.query", Code: "TDB02I", ID: "00000000-0000-4000-8000-00000000b1b1", Time: start.Add(30 * time.Second)},
		DatabaseQuery: strings.Repeat("SELECT 1; ", 20000),
	}
	e.srv.Append(big)
	after := testenv.Seed(e.srv, 55, 20, start.Add(40*time.Second), time.Second)

	h := host(t, flbhost.Options{})
	idx := initOK(t, h, e.props(start, "page_size", "7"))
	_, err := h.Drain(idx, len(before)+len(after), 30*time.Second, 0)
	require.NoError(t, err, h.Log())
	assert.Equal(t, append(before, after...), uids(records(t, h)))
	logHas(t, h, 5*time.Second, "skipping db.session.query event 00000000-0000-4000-8000-00000000b1b1")
	assert.Regexp(t, `\[warn\] \[input:teleport:[^]]+\] skipping db.session.query event 00000000-0000-4000-8000-00000000b1b1`, h.Log(), "a warning, not an info line")
}
