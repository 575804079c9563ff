package integration

// Tests against a real Teleport Auth Service: tests/realauth runs
// tests/realteleport, Teleport 13.3.8's Auth Service with the file audit log
// that self-hosted clusters use (its first build takes several minutes).

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"testing"
	"time"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/teleport/api/types"
	"github.com/gravitational/trace"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/flbhost"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/realauth"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/testenv"
)

// The real server writes events of its own next to the ones realauthd
// emits: the role and user it creates, the certificate it signs, a
// session.upload per completed recording, a session.recording.access per
// recording read.
var realServerEventTypes = map[string]bool{
	"role.created": true, "user.create": true, "cert.create": true,
	"session.upload": true, "session.recording.access": true,
}

// TestRealTeleportExportsSeededDaysInOrder: every event seeded over three
// days (four day files of the file log) arrives exactly once, in time order,
// with its time, through small pages and 24h windows.
func TestRealTeleportExportsSeededDaysInOrder(t *testing.T) {
	rt := realauth.Start(t, realauth.Options{Events: 1500, Days: 3, Sessions: 1})
	files, err := filepath.Glob(filepath.Join(rt.DataDir, "log", "*", "*.log"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 3, "seeded events span several day files: %v", files)

	h := host(t, flbhost.Options{})
	idx := initOK(t, h, rt.Props("page_size", "100", "window_size", "24h"))
	want := rt.Manifest(t)
	collectUntilUIDs(t, h, idx, 60*time.Second, want)
	recs := collectFor(t, h, idx, time.Second) // anything delivered twice shows up too

	checkExactlyOnceInOrder(t, recs, want)
	extra := map[string]int{}
	for _, r := range recs {
		if _, seeded := want.ByUID[uidOf(r)]; !seeded {
			typ, _ := r.Body["event"].(string)
			assert.True(t, realServerEventTypes[typ], "unexpected event %s from the server: %v", typ, r.Body)
			extra[typ]++
		}
	}
	assert.Positive(t, extra["cert.create"]+extra["user.create"]+extra["role.created"], "the server's own events are exported too")
	t.Logf("%d records: %d emitted by realauthd over %d day files, server events %v", len(recs), len(want.List), len(files), extra)
}

// TestRealTeleportFollowsNewEvents: once caught up, events written now
// arrive within a few poll intervals.
func TestRealTeleportFollowsNewEvents(t *testing.T) {
	rt := realauth.Start(t, realauth.Options{Events: 300, Days: 1})
	h := host(t, flbhost.Options{})
	idx := initOK(t, h, rt.Props("page_size", "100"))
	collectUntilUIDs(t, h, idx, 30*time.Second, rt.Manifest(t))

	for round := 0; round < 2; round++ {
		fresh := rt.Emit(t, 20)
		begin := time.Now()
		collectUntilUIDs(t, h, idx, 15*time.Second, fresh)
		t.Logf("20 new events arrived %v after they were written", time.Since(begin).Round(time.Millisecond))
	}
	checkExactlyOnceInOrder(t, collectFor(t, h, idx, time.Second), rt.Manifest(t))
}

// TestRealTeleportResumesAfterRestart: a host stopped mid-export and a new
// one on the same db deliver every event exactly once between them.
func TestRealTeleportResumesAfterRestart(t *testing.T) {
	rt := realauth.Start(t, realauth.Options{Events: 1500, Days: 3})
	want := rt.Manifest(t)
	props := rt.Props("page_size", "100", "window_size", "24h", "batch_max_records", "50")

	h1 := host(t, flbhost.Options{})
	idx := initOK(t, h1, props)
	_, err := h1.Drain(idx, 50, 30*time.Second, 0)
	require.NoError(t, err, h1.Log())
	_, err = h1.Quit()
	require.NoError(t, err)
	part1 := records(t, h1)
	require.NotEmpty(t, part1)
	require.Less(t, len(part1), len(want.List)/2, "stopped mid-export")

	h2 := host(t, flbhost.Options{})
	idx = initOK(t, h2, props)
	missing := realauth.NewManifest()
	for _, e := range want.List {
		if !containsUID(part1, e.UID) {
			missing.Add(e)
		}
	}
	part2 := collectUntilUIDs(t, h2, idx, 60*time.Second, missing)
	assert.Contains(t, h2.Log(), "resuming from the position saved in db")
	checkExactlyOnceInOrder(t, append(part1, part2...), want)
	t.Logf("first run %d records, second run %d", len(part1), len(part2))
}

// TestRealTeleportExportsSessionUploadEvents: a completed recording makes the
// server write session.upload, which is an audit event like any other.
func TestRealTeleportExportsSessionUploadEvents(t *testing.T) {
	rt := realauth.Start(t, realauth.Options{Events: 50, Days: 1, Sessions: 2})
	require.Len(t, rt.Sessions, 2)
	h := host(t, flbhost.Options{})
	idx := initOK(t, h, rt.Props())
	want := rt.Manifest(t)
	collectUntilUIDs(t, h, idx, 30*time.Second, want)

	uploads := map[string][]flbhost.Record{}
	testenv.Eventually(t, 15*time.Second, "a session.upload record per session", func() bool {
		_, err := h.Collect(idx, 1)
		require.NoError(t, err, h.Log())
		clear(uploads)
		for _, r := range records(t, h) {
			if r.Body["event"] == "session.upload" {
				sid, _ := r.Body["sid"].(string)
				uploads[sid] = append(uploads[sid], r)
			}
		}
		return len(uploads) == len(rt.Sessions)
	})
	for _, sid := range rt.Sessions {
		require.Len(t, uploads[sid], 1, "one session.upload for session %s", sid)
		r := uploads[sid][0]
		assert.Equal(t, "T2005I", r.Body["code"])
		assert.NotEmpty(t, r.Body["uid"])
		assert.Equal(t, rt.Cluster, r.Body["cluster_name"])
		assert.NotEmpty(t, r.Body["url"], "where the recording is stored")
		assert.False(t, r.Time.Before(want.SessionEnd(t, sid)), "written when the recording is complete")
	}
	checkExactlyOnceInOrder(t, records(t, h), want)
}

// TestRealTeleportExportsRecordingsThroughTheStructuredFallback: with
// sessions on, each session.upload starts the export of its recording.
// Teleport 13 has no StreamUnstructuredSessionEvents, so the plugin falls
// back to StreamSessionEvents; auto mode falls back to search likewise.
// Prints are skipped by default: start, resize and end remain, in index
// order, marked for the session routing recipe.
func TestRealTeleportExportsRecordingsThroughTheStructuredFallback(t *testing.T) {
	rt := realauth.Start(t, realauth.Options{Events: 50, Days: 1, Sessions: 2})
	require.Len(t, rt.Sessions, 2)
	h := host(t, flbhost.Options{})
	idx := initOK(t, h, rt.Props("sessions", "on"))

	recordings := map[string][]flbhost.Record{}
	testenv.Eventually(t, 30*time.Second, "three recording events per session", func() bool {
		_, err := h.Collect(idx, 1)
		require.NoError(t, err, h.Log())
		clear(recordings)
		for _, r := range records(t, h) {
			if r.Body["teleport_stream"] == "session" {
				sid, _ := r.Body["sid"].(string)
				recordings[sid] = append(recordings[sid], r)
			}
		}
		done := len(recordings) == len(rt.Sessions)
		for _, recs := range recordings {
			done = done && len(recs) >= 3
		}
		return done
	})
	got := map[string][]string{}
	for _, r := range collectFor(t, h, idx, time.Second) { // and nothing more comes
		if r.Body["teleport_stream"] == "session" {
			sid, _ := r.Body["sid"].(string)
			got[sid] = append(got[sid], fmt.Sprintf("%v#%v", r.Body["event"], r.Body["ei"]))
		}
	}
	for _, sid := range rt.Sessions {
		assert.Equal(t, []string{"session.start#0", "resize#1", "session.end#5"}, got[sid], "session %s: its recording without prints, in order, once", sid)
	}
	log := h.Log()
	assert.Contains(t, log, "export_mode auto: the cluster has no bulk export, so the plugin uses search")
	assert.Contains(t, log, "the cluster has no StreamUnstructuredSessionEvents (Teleport 13 or older): using StreamSessionEvents")
	for _, sid := range rt.Sessions {
		assert.Contains(t, log, "exported the recording of session "+sid)
	}
}

// TestRealTeleportAPIAnswers pins what a Teleport 13.3.8 Auth Service with
// the file audit log answers to the plugin's api client (the version in this
// module's go.mod), for the calls the plugin uses or may use.
func TestRealTeleportAPIAnswers(t *testing.T) {
	rt := realauth.Start(t, realauth.Options{Events: 700, Days: 2, Sessions: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	clt := rt.Client(t)

	ping, err := clt.Ping(ctx)
	require.NoError(t, err)
	assert.Equal(t, "13.3.8", ping.ServerVersion)
	assert.Equal(t, rt.Cluster, ping.ClusterName)

	// Paging: one query over the whole range, 100 per page, following the
	// page keys. The file log's key is the uid of the page's last event.
	want := rt.Manifest(t)
	from, to := rt.First.Add(-time.Minute), time.Now().Add(time.Minute)
	var got []*auditlogpb.EventUnstructured
	key, pages := "", 0
	for {
		page, next, err := clt.SearchUnstructuredEvents(ctx, from, to, "default", nil, 100, types.EventOrderAscending, key)
		require.NoError(t, err)
		pages++
		require.LessOrEqual(t, len(page), 100)
		got = append(got, page...)
		if next == "" {
			break
		}
		require.NotEmpty(t, page)
		assert.Equal(t, page[len(page)-1].GetId(), next, "the page key is the last event's uid")
		key = next
		require.Less(t, pages, 100, "paging does not end")
	}
	seen := map[string]int{}
	for i, ev := range got {
		seen[ev.GetId()]++
		if i > 0 {
			require.False(t, ev.GetTime().AsTime().Before(got[i-1].GetTime().AsTime()), "ascending at %d", i)
		}
	}
	for _, e := range want.List {
		assert.Equal(t, 1, seen[e.UID], "event %s once", e.UID)
	}
	t.Logf("SearchUnstructuredEvents: %d events in %d pages of at most 100", len(got), pages)

	// Bulk export (newer Teleport) does not exist on this server.
	chunksReq := &auditlogpb.GetEventExportChunksRequest{}
	chunksReq.SetDate(timestamppb.New(rt.First))
	chunks := clt.GetEventExportChunks(ctx, chunksReq)
	for chunks.Next() {
		t.Errorf("unexpected export chunk %v", chunks.Item())
	}
	err = chunks.Done()
	t.Logf("GetEventExportChunks: %v", err)
	assert.True(t, trace.IsNotImplemented(err), "GetEventExportChunks: want NotImplemented, got %v", err)

	exportReq := &auditlogpb.ExportUnstructuredEventsRequest{}
	exportReq.SetDate(timestamppb.New(rt.First))
	exported := clt.ExportUnstructuredEvents(ctx, exportReq)
	for exported.Next() {
		t.Errorf("unexpected exported event %v", exported.Item())
	}
	err = exported.Done()
	t.Logf("ExportUnstructuredEvents: %v", err)
	assert.True(t, trace.IsNotImplemented(err), "ExportUnstructuredEvents: want NotImplemented, got %v", err)

	// Unstructured session streaming does not exist on 13.3.8 either...
	evC, errC := clt.StreamUnstructuredSessionEvents(ctx, rt.Sessions[0], 0)
	select {
	case ev, ok := <-evC:
		t.Fatalf("StreamUnstructuredSessionEvents: unexpected event %v (open %v)", ev, ok)
	case err := <-errC:
		t.Logf("StreamUnstructuredSessionEvents: %v", err)
		assert.True(t, trace.IsNotImplemented(err), "StreamUnstructuredSessionEvents: want NotImplemented, got %v", err)
	case <-ctx.Done():
		t.Fatal("StreamUnstructuredSessionEvents: no answer")
	}

	// ...while the typed stream returns the recording realauthd made.
	typedC, typedErrC := clt.StreamSessionEvents(ctx, rt.Sessions[0], 0)
	var kinds []string
recv:
	for {
		select {
		case ev, ok := <-typedC:
			if !ok {
				break recv
			}
			kinds = append(kinds, ev.GetType())
		case err := <-typedErrC:
			require.NoError(t, err)
			break recv
		case <-ctx.Done():
			t.Fatal("StreamSessionEvents: no end")
		}
	}
	assert.Equal(t, []string{"session.start", "resize", "print", "print", "print", "session.end"}, kinds)
}

// ---- helpers --------------------------------------------------------------

func uidOf(r flbhost.Record) string {
	s, _ := r.Body["uid"].(string)
	return s
}

func containsUID(recs []flbhost.Record, uid string) bool {
	for _, r := range recs {
		if uidOf(r) == uid {
			return true
		}
	}
	return false
}

// collectUntilUIDs runs collect callbacks until every event of want is among
// the host's records, and returns the records.
func collectUntilUIDs(t *testing.T, h *flbhost.Host, idx int, timeout time.Duration, want realauth.Manifest) []flbhost.Record {
	t.Helper()
	var recs []flbhost.Record
	missing := len(want.List)
	deadline := time.Now().Add(timeout)
	for {
		_, err := h.Collect(idx, 1)
		require.NoError(t, err, h.Log())
		recs = records(t, h)
		have := map[string]bool{}
		for _, r := range recs {
			have[uidOf(r)] = true
		}
		missing = 0
		for _, e := range want.List {
			if !have[e.UID] {
				missing++
			}
		}
		if missing == 0 {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, %d of %d events still missing (%d records); plugin log:\n%s", timeout, missing, len(want.List), len(recs), h.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// collectFor runs collect callbacks for d (ten poll intervals of 100ms) and
// returns the host's records: for checks that nothing more arrives.
func collectFor(t *testing.T, h *flbhost.Host, idx int, d time.Duration) []flbhost.Record {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		_, err := h.Collect(idx, 1)
		require.NoError(t, err, h.Log())
	}
	return records(t, h)
}

// checkExactlyOnceInOrder: no uid twice, times never go back, and each event
// of want is there once with its time (nanoseconds kept) and type.
func checkExactlyOnceInOrder(t *testing.T, recs []flbhost.Record, want realauth.Manifest) {
	t.Helper()
	count := map[string]int{}
	var backwards []string
	for i, r := range recs {
		uid := uidOf(r)
		require.NotEmpty(t, uid, "record %d has a uid: %v", i, r.Body)
		count[uid]++
		if i > 0 && r.Time.Before(recs[i-1].Time) {
			backwards = append(backwards, fmt.Sprintf("record %d (%s at %s) after record %d (%s at %s)",
				i, uid, r.Time.Format(time.RFC3339Nano), i-1, uidOf(recs[i-1]), recs[i-1].Time.Format(time.RFC3339Nano)))
		}
		if e, ok := want.ByUID[uid]; ok && count[uid] == 1 {
			assert.True(t, e.Time.Equal(r.Time), "record time of %s: %v, written %v", uid, r.Time, e.Time)
			assert.Equal(t, e.Type, r.Body["event"], uid)
		}
	}
	var dups []string
	for uid, n := range count {
		if n > 1 {
			dups = append(dups, fmt.Sprintf("%s×%d", uid, n))
		}
	}
	sort.Strings(dups)
	assert.Empty(t, dups, "uids delivered more than once")
	assert.Empty(t, backwards, "record times go back")
	for _, e := range want.List {
		if count[e.UID] == 0 {
			t.Errorf("event %s (%s at %v) is missing", e.UID, e.Type, e.Time)
		}
	}
}
