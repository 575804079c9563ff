package teleportfake

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gravitational/teleport/api/client"
	"github.com/gravitational/teleport/api/client/proto"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/teleport/api/identityfile"
	"github.com/gravitational/teleport/api/internalutils/stream"
	"github.com/gravitational/teleport/api/types"
	apievents "github.com/gravitational/teleport/api/types/events"
	"github.com/gravitational/trace"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// seeded starts a server holding n generated events one second apart from
// t0, appended in shuffled order, and returns the events in time order.
func seeded(t *testing.T, cfg Config, n int) (*Server, []apievents.AuditEvent) {
	t.Helper()
	s := startServer(t, cfg)
	evs := NewGenerator(1).Events(n, t0, time.Second)
	shuffled := slices.Clone(evs)
	rand.New(rand.NewSource(2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	s.Append(shuffled[:n/2]...)
	s.Append(shuffled[n/2:]...)
	require.Equal(t, n, s.Len())
	return s, evs
}

func eventIDs(evs []apievents.AuditEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.GetID()
	}
	return out
}

func TestPing(t *testing.T) {
	s := startServer(t, Config{ClusterName: "ping.example"})
	clt := connect(t, s, IdentityOptions{User: "pinger", Roles: []string{"a", "b"}})
	resp, err := clt.Ping(testContext(t))
	require.NoError(t, err)
	assert.Equal(t, "ping.example", resp.ClusterName)
	assert.Equal(t, "19.0.0", resp.ServerVersion)
	assert.Equal(t, "ping.example", s.ClusterName())

	calls := s.Calls()
	require.Len(t, calls, 1, "client.New sends no RPC; Ping sends one")
	assert.Equal(t, MethodPing, calls[0].Method)
	assert.Equal(t, "pinger", calls[0].User)
	assert.NotEmpty(t, calls[0].Serial)
	assert.Equal(t, 1, s.CallCount(MethodPing))
	s.ResetCalls()
	assert.Empty(t, s.Calls())
	assert.Zero(t, s.CallCount(MethodPing))
}

func TestSearchUnstructuredAscendingPages(t *testing.T) {
	s, evs := seeded(t, Config{}, 25)
	clt := connect(t, s, IdentityOptions{})

	all, pages := searchAll(t, clt, t0, t0.Add(time.Hour), nil, 10, types.EventOrderAscending)
	require.Len(t, pages, 3)
	assert.Len(t, pages[0].ids, 10)
	assert.Equal(t, pages[0].ids[9], pages[0].key, "the key is the uid of the page's last event")
	assert.Len(t, pages[1].ids, 10)
	assert.Equal(t, pages[1].ids[9], pages[1].key)
	assert.Len(t, pages[2].ids, 5)
	assert.Empty(t, pages[2].key)
	assert.Equal(t, eventIDs(evs), ids(all), "ascending time order across pages")

	// Field values match what the real server sends (events.ToUnstructured).
	first := all[0]
	want, err := apievents.ToUnstructured(evs[0])
	require.NoError(t, err)
	assert.Equal(t, want.GetType(), first.GetType())
	assert.True(t, want.GetTime().AsTime().Equal(first.GetTime().AsTime()))
	assert.Equal(t, want.GetUnstructured().AsMap(), first.GetUnstructured().AsMap())
	assert.Equal(t, evs[0].GetID(), first.GetUnstructured().AsMap()["uid"])

	// ORDER GOTCHA: the real client sends types.EventOrderAscending as wire value 0.
	require.Equal(t, 3, s.CallCount(MethodGetUnstructuredEvents))
	for _, c := range s.Calls() {
		if c.Method == MethodGetUnstructuredEvents {
			req, ok := c.Request.(*auditlogpb.GetUnstructuredEventsRequest)
			require.True(t, ok)
			assert.Equal(t, int32(0), int32(req.GetOrder()))
			assert.Equal(t, int32(10), req.GetLimit())
		}
	}

	// Exactly exhausted at the limit: the key is "" at once, no empty extra page.
	_, pages = searchAll(t, clt, t0, t0.Add(19*time.Second), nil, 10, types.EventOrderAscending)
	require.Len(t, pages, 2)
	assert.NotEmpty(t, pages[0].key)
	assert.Len(t, pages[1].ids, 10)
	assert.Empty(t, pages[1].key)

	// The default limit is 500.
	items, key, err := clt.SearchUnstructuredEvents(testContext(t), t0, t0.Add(time.Hour), "", nil, 0, types.EventOrderAscending, "")
	require.NoError(t, err)
	assert.Len(t, items, 25)
	assert.Empty(t, key)
}

func TestSearchDefaultLimit(t *testing.T) {
	s, _ := seeded(t, Config{}, 600)
	clt := connect(t, s, IdentityOptions{})
	items, key, err := clt.SearchUnstructuredEvents(testContext(t), t0, t0.Add(time.Hour), "", nil, 0, types.EventOrderAscending, "")
	require.NoError(t, err)
	assert.Len(t, items, 500)
	assert.Equal(t, items[499].GetId(), key)
}

func TestSearchTimeWindowInclusive(t *testing.T) {
	s, evs := seeded(t, Config{}, 20)
	clt := connect(t, s, IdentityOptions{})
	from, to := evs[5].GetTime(), evs[9].GetTime()

	all, _ := searchAll(t, clt, from, to, nil, 100, types.EventOrderAscending)
	assert.Equal(t, eventIDs(evs[5:10]), ids(all))

	// Full precision: one nanosecond inside excludes the boundary events.
	all, _ = searchAll(t, clt, from.Add(time.Nanosecond), to.Add(-time.Nanosecond), nil, 100, types.EventOrderAscending)
	assert.Equal(t, eventIDs(evs[6:9]), ids(all))

	all, _ = searchAll(t, clt, from, to, nil, 100, types.EventOrderDescending)
	assert.Equal(t, eventIDs(evs[5:10]), reversed(ids(all)))
}

func TestSearchTypeFilter(t *testing.T) {
	s, evs := seeded(t, Config{}, 300)
	clt := connect(t, s, IdentityOptions{})
	want := []string{}
	for _, e := range evs {
		if e.GetType() == TypeUserLogin || e.GetType() == TypeExec {
			want = append(want, e.GetID())
		}
	}
	require.NotEmpty(t, want)
	all, pages := searchAll(t, clt, t0, t0.Add(time.Hour), []string{TypeUserLogin, TypeExec}, 7, types.EventOrderAscending)
	assert.Equal(t, want, ids(all))
	assert.Greater(t, len(pages), 1)
	for _, it := range all {
		assert.Contains(t, []string{TypeUserLogin, TypeExec}, it.GetType())
	}

	// A key whose event is not of the requested types is not in the result set.
	var other string
	for _, e := range evs {
		if e.GetType() == TypeKubeRequest {
			other = e.GetID()
			break
		}
	}
	items, key, err := clt.SearchUnstructuredEvents(testContext(t), t0, t0.Add(time.Hour), "", []string{TypeExec}, 10, types.EventOrderAscending, other)
	require.NoError(t, err)
	assert.Empty(t, items)
	assert.Empty(t, key)
}

func reversed(xs []string) []string {
	out := slices.Clone(xs)
	slices.Reverse(out)
	return out
}

func TestSearchDescending(t *testing.T) {
	s, evs := seeded(t, Config{}, 25)
	clt := connect(t, s, IdentityOptions{})
	all, pages := searchAll(t, clt, t0, t0.Add(time.Hour), nil, 10, types.EventOrderDescending)
	require.Len(t, pages, 3)
	assert.Equal(t, reversed(eventIDs(evs)), ids(all))
	for _, c := range s.Calls() {
		if req, ok := c.Request.(*auditlogpb.GetUnstructuredEventsRequest); ok {
			assert.Equal(t, int32(1), int32(req.GetOrder()), "descending is wire value 1")
		}
	}
}

func TestSearchEventsStructured(t *testing.T) {
	s, evs := seeded(t, Config{}, 25)
	clt := connect(t, s, IdentityOptions{})
	ctx := testContext(t)

	for _, order := range []types.EventOrder{types.EventOrderAscending, types.EventOrderDescending} {
		var got []string
		key := ""
		pagesSeen := 0
		for {
			page, next, err := clt.SearchEvents(ctx, t0, t0.Add(time.Hour), "default", nil, 10, order, key, "")
			require.NoError(t, err)
			pagesSeen++
			for _, e := range page {
				got = append(got, e.GetID())
			}
			if next == "" {
				break
			}
			key = next
		}
		want := eventIDs(evs)
		if order == types.EventOrderDescending {
			want = reversed(want)
		}
		assert.Equal(t, want, got)
		assert.Equal(t, 3, pagesSeen)
	}

	// Typed round trip and the recorded (gogo) request.
	page, _, err := clt.SearchEvents(ctx, evs[3].GetTime(), evs[3].GetTime(), "default", []string{evs[3].GetType()}, 10, types.EventOrderAscending, "", "")
	require.NoError(t, err)
	require.Len(t, page, 1)
	assert.Equal(t, evs[3], page[0])
	calls := s.Calls()
	last := calls[len(calls)-1]
	assert.Equal(t, MethodGetEvents, last.Method)
	req, ok := protoadapt.MessageV1Of(last.Request).(*proto.GetEventsRequest)
	require.True(t, ok)
	assert.Equal(t, []string{evs[3].GetType()}, req.EventTypes)
}

// bigEvent is a db.session.query of about size bytes.
func bigEvent(i int, size int) apievents.AuditEvent {
	return &apievents.DatabaseSessionQuery{
		Metadata: apievents.Metadata{
			Type: TypeDBSessionQuery, Code: CodeDBSessionQuery,
			ID:   fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
			Time: t0.Add(time.Duration(i) * time.Millisecond), ClusterName: DefaultClusterName,
		},
		DatabaseQuery: "SELECT '" + strings.Repeat("x", size) + "'",
	}
}

func TestSearchPageByteCap(t *testing.T) {
	s := startServer(t, Config{})
	var evs []apievents.AuditEvent
	for i := range 35 {
		evs = append(evs, bigEvent(i, 100_000))
	}
	s.Append(evs...)
	clt := connect(t, s, IdentityOptions{})

	all, pages := searchAll(t, clt, t0, t0.Add(time.Hour), nil, 10000, types.EventOrderAscending)
	require.Greater(t, len(pages), 3)
	for i, p := range pages {
		assert.Less(t, len(p.ids), 11, "a 1 MiB page holds at most 10 events of 100 KB")
		assert.NotEmpty(t, p.ids)
		if i < len(pages)-1 {
			assert.Equal(t, p.ids[len(p.ids)-1], p.key, "short pages carry a key")
		}
	}
	assert.Empty(t, pages[len(pages)-1].key)
	assert.Equal(t, eventIDs(evs), ids(all), "every event exactly once, in order")
}

func TestSearchLimitTooLarge(t *testing.T) {
	s, _ := seeded(t, Config{}, 5)
	clt := connect(t, s, IdentityOptions{})
	_, _, err := clt.SearchUnstructuredEvents(testContext(t), t0, t0.Add(time.Hour), "", nil, 10001, types.EventOrderAscending, "")
	require.Error(t, err)
	assert.True(t, trace.IsBadParameter(err), "%v", err)
	assert.Contains(t, err.Error(), "limit 10001 exceeds max iteration limit 10000")

	_, _, err = clt.SearchUnstructuredEvents(testContext(t), t0, t0.Add(time.Hour), "", nil, 10000, types.EventOrderAscending, "")
	require.NoError(t, err)
}

func TestSearchStartKeyNotFound(t *testing.T) {
	s, evs := seeded(t, Config{}, 10)
	clt := connect(t, s, IdentityOptions{})
	ctx := testContext(t)
	items, key, err := clt.SearchUnstructuredEvents(ctx, t0, t0.Add(time.Hour), "", nil, 5, types.EventOrderAscending, "no-such-uid")
	require.NoError(t, err)
	assert.Empty(t, items)
	assert.Empty(t, key)

	// A known uid outside the time window is not in the result set either.
	items, key, err = clt.SearchUnstructuredEvents(ctx, evs[5].GetTime(), t0.Add(time.Hour), "", nil, 5, types.EventOrderAscending, evs[2].GetID())
	require.NoError(t, err)
	assert.Empty(t, items)
	assert.Empty(t, key)

	// A known uid continues right after that event.
	items, _, err = clt.SearchUnstructuredEvents(ctx, t0, t0.Add(time.Hour), "", nil, 2, types.EventOrderAscending, evs[2].GetID())
	require.NoError(t, err)
	assert.Equal(t, eventIDs(evs[3:5]), ids(items))
}

func TestSearchOversizedEvent(t *testing.T) {
	s := startServer(t, Config{MaxPageBytes: 64 << 10})
	s.Append(bigEvent(0, 1000), bigEvent(1, 70_000), bigEvent(2, 1000))
	clt := connect(t, s, IdentityOptions{})
	ctx := testContext(t)

	items, key, err := clt.SearchUnstructuredEvents(ctx, t0, t0.Add(time.Hour), "", nil, 100, types.EventOrderAscending, "")
	require.NoError(t, err)
	require.Len(t, items, 1, "the page stops before the oversized event")
	require.Equal(t, items[0].GetId(), key)

	_, _, err = clt.SearchUnstructuredEvents(ctx, t0, t0.Add(time.Hour), "", nil, 100, types.EventOrderAscending, key)
	require.Error(t, err)
	// Teleport's own wording, sent as trace.Errorf (code Unknown).
	assert.Contains(t, err.Error(), "db.session.query event 00000000-0000-4000-8000-000000000001 is ")
	assert.Contains(t, err.Error(), "KiB and cannot be returned because it exceeds the maximum response size of ")

	_, _, err = clt.SearchEvents(ctx, t0, t0.Add(time.Hour), "", nil, 100, types.EventOrderAscending, key, "")
	assert.Contains(t, fmt.Sprint(err), "cannot be returned because it exceeds the maximum response size", "%v", err)
}

func TestFaults(t *testing.T) {
	s, _ := seeded(t, Config{}, 5)
	clt := connect(t, s, IdentityOptions{})
	ctx := testContext(t)
	search := func() error {
		_, _, err := clt.SearchUnstructuredEvents(ctx, t0, t0.Add(time.Hour), "", nil, 10, types.EventOrderAscending, "")
		return err
	}

	s.SetDeny(true)
	err := search()
	assert.True(t, trace.IsAccessDenied(err), "%v", err)
	_, err = clt.Ping(ctx)
	assert.True(t, trace.IsAccessDenied(err), "%v", err)
	s.SetDeny(false)
	require.NoError(t, search())

	s.SetUnavailable(true)
	err = search()
	assert.True(t, trace.IsConnectionProblem(err), "%v", err)
	s.SetUnavailable(false)
	require.NoError(t, search())

	s.FailNext(MethodGetUnstructuredEvents, codes.Internal, 2)
	require.Error(t, search())
	require.Error(t, search())
	require.NoError(t, search())
	_, err = clt.Ping(ctx)
	require.NoError(t, err, "FailNext is per method")

	s.SetLatency(50 * time.Millisecond)
	start := time.Now()
	require.NoError(t, search())
	assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
	s.SetLatency(0)
}

func TestConnectFailures(t *testing.T) {
	s := startServer(t, Config{})
	// client.New only gives up when DialTimeout expires; the cases run
	// concurrently so the test takes one timeout.
	const timeout = time.Second
	cases := map[string]IdentityOptions{
		"expired":          {NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour)},
		"not yet valid":    {NotBefore: time.Now().Add(time.Hour), NotAfter: time.Now().Add(2 * time.Hour)},
		"untrusted client": {UntrustedClientCA: true},
		"wrong server CA":  {WrongServerCA: true},
	}
	type result struct {
		name    string
		err     error
		elapsed time.Duration
	}
	results := make(chan result, len(cases))
	dir := t.TempDir()
	for name, o := range cases {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		require.NoError(t, s.WriteIdentityFile(path, o))
		go func() {
			start := time.Now()
			clt, err := dial(s, path, timeout)
			if err == nil {
				clt.Close()
			}
			results <- result{name, err, time.Since(start)}
		}()
	}
	for range cases {
		r := <-results
		assert.Error(t, r.err, r.name)
		assert.Less(t, r.elapsed, timeout+3*time.Second, "%s: bounded by DialTimeout", r.name)
	}
	assert.Zero(t, s.CallCount(MethodPing), "no RPC got through")

	// The same server accepts a valid identity.
	clt := connect(t, s, IdentityOptions{})
	_, err := clt.Ping(testContext(t))
	require.NoError(t, err)
}

func certSerial(t *testing.T, identityPath string) string {
	t.Helper()
	id, err := identityfile.ReadFile(identityPath)
	require.NoError(t, err)
	block, _ := pem.Decode(id.Certs.TLS)
	require.NotNil(t, block)
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	return cert.SerialNumber.Text(16)
}

func TestIdentityRotation(t *testing.T) {
	s := startServer(t, Config{})
	path := filepath.Join(t.TempDir(), "identity")
	require.NoError(t, s.WriteIdentityFile(path, IdentityOptions{User: "rotator"}))
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	first := certSerial(t, path)

	clt1, err := dial(s, path, dialTimeout)
	require.NoError(t, err)
	defer clt1.Close()
	_, err = clt1.Ping(testContext(t))
	require.NoError(t, err)

	require.NoError(t, s.WriteIdentityFile(path, IdentityOptions{User: "rotator"}))
	st, err = os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	second := certSerial(t, path)
	require.NotEqual(t, first, second)
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary files left behind")

	clt2, err := dial(s, path, dialTimeout)
	require.NoError(t, err)
	defer clt2.Close()
	_, err = clt2.Ping(testContext(t))
	require.NoError(t, err)

	calls := s.Calls()
	require.Len(t, calls, 2)
	assert.Equal(t, first, calls[0].Serial)
	assert.Equal(t, second, calls[1].Serial)
	assert.Equal(t, "rotator", calls[1].User)
}

func TestKeyPair(t *testing.T) {
	s := startServer(t, Config{})
	certFile, keyFile, caFile, err := s.WriteKeyPair(t.TempDir(), IdentityOptions{User: "kp"})
	require.NoError(t, err)
	ctx := testContext(t)
	clt, err := client.New(ctx, client.Config{
		Addrs:       []string{s.Addr()},
		Credentials: []client.Credentials{client.LoadKeyPair(certFile, keyFile, caFile)},
		DialTimeout: dialTimeout,
	})
	require.NoError(t, err)
	defer clt.Close()
	resp, err := clt.Ping(ctx)
	require.NoError(t, err)
	assert.Equal(t, DefaultClusterName, resp.ClusterName)
	assert.Equal(t, "kp", s.Calls()[0].User)
}

func TestSessions(t *testing.T) {
	s := startServer(t, Config{})
	g := NewGenerator(3)
	rec, upload := g.Session("sess-1", t0, 20)
	s.AddSession("sess-1", rec)
	s.Append(upload)
	clt := connect(t, s, IdentityOptions{})
	ctx := testContext(t)

	got, err := drain(t, func() (chan *auditlogpb.EventUnstructured, chan error) {
		return clt.StreamUnstructuredSessionEvents(ctx, "sess-1", 0)
	})
	require.NoError(t, err)
	require.Len(t, got, 20)
	for i, e := range got {
		assert.Equal(t, int64(i), e.GetIndex())
		assert.Equal(t, rec[i].GetType(), e.GetType())
	}
	assert.Equal(t, TypeSessionStart, got[0].GetType())
	assert.Equal(t, TypeSessionEnd, got[19].GetType())
	for i, e := range rec {
		if p, ok := e.(*apievents.SessionPrint); ok {
			assert.NotEmpty(t, got[i].GetUnstructured().AsMap()["data"], "print data is included")
			assert.NotEmpty(t, p.Data)
			break
		}
	}

	// Like Teleport, events with an index of at least 5.
	got, err = drain(t, func() (chan *auditlogpb.EventUnstructured, chan error) {
		return clt.StreamUnstructuredSessionEvents(ctx, "sess-1", 5)
	})
	require.NoError(t, err)
	require.Len(t, got, 15)
	assert.Equal(t, int64(5), got[0].GetIndex())

	typed, err := drain(t, func() (chan apievents.AuditEvent, chan error) {
		return clt.StreamSessionEvents(ctx, "sess-1", 0)
	})
	require.NoError(t, err)
	assert.Equal(t, rec, typed)
	assert.Equal(t, 1, s.CallCount(MethodStreamSessionEvents))
	for _, c := range s.Calls() {
		if c.Method == MethodStreamSessionEvents {
			req, ok := protoadapt.MessageV1Of(c.Request).(*proto.StreamSessionEventsRequest)
			require.True(t, ok)
			assert.Equal(t, "sess-1", req.SessionID)
		}
	}

	// The session.upload audit event announces the recording.
	items, _, err := clt.SearchUnstructuredEvents(ctx, t0, t0.Add(time.Hour), "", []string{TypeSessionUpload}, 10, types.EventOrderAscending, "")
	require.NoError(t, err)
	require.Len(t, items, 1)
	assert.Equal(t, "sess-1", items[0].GetUnstructured().AsMap()["sid"])

	_, err = drain(t, func() (chan *auditlogpb.EventUnstructured, chan error) {
		return clt.StreamUnstructuredSessionEvents(ctx, "nope", 0)
	})
	assert.True(t, trace.IsNotFound(err), "%v", err)
	_, err = drain(t, func() (chan apievents.AuditEvent, chan error) {
		return clt.StreamSessionEvents(ctx, "nope", 0)
	})
	assert.True(t, trace.IsNotFound(err), "%v", err)
}

func TestStructuredSessionsOnly(t *testing.T) {
	s := startServer(t, Config{StructuredSessionsOnly: true})
	rec, _ := NewGenerator(4).Session("s2", t0, 6)
	s.AddSession("s2", rec)
	clt := connect(t, s, IdentityOptions{})
	ctx := testContext(t)
	_, err := drain(t, func() (chan *auditlogpb.EventUnstructured, chan error) {
		return clt.StreamUnstructuredSessionEvents(ctx, "s2", 0)
	})
	assert.True(t, trace.IsNotImplemented(err), "%v", err)
	typed, err := drain(t, func() (chan apievents.AuditEvent, chan error) {
		return clt.StreamSessionEvents(ctx, "s2", 0)
	})
	require.NoError(t, err)
	assert.Len(t, typed, 6)
}

func TestBulkExport(t *testing.T) {
	s := startServer(t, Config{BulkExport: true, ChunkSize: 10})
	g := NewGenerator(5)
	day := t0.Truncate(24 * time.Hour)
	// 25 events on one day, then 3 later that day, then 4 on the next day.
	first := g.Events(25, day.Add(time.Hour), time.Second)
	s.Append(first...)
	clt := connect(t, s, IdentityOptions{})
	ctx := testContext(t)

	listChunks := func(date time.Time) []string {
		chunks, err := stream.Collect(clt.GetEventExportChunks(ctx, &auditlogpb.GetEventExportChunksRequest{Date: timestamppb.New(date)}))
		require.NoError(t, err)
		out := []string{}
		for _, c := range chunks {
			out = append(out, c.GetChunk())
		}
		return out
	}
	export := func(date time.Time, chunk, cursor string) []*auditlogpb.ExportEventUnstructured {
		items, err := stream.Collect(clt.ExportUnstructuredEvents(ctx, &auditlogpb.ExportUnstructuredEventsRequest{
			Date: timestamppb.New(date), Chunk: chunk, Cursor: cursor,
		}))
		require.NoError(t, err)
		return items
	}

	chunks := listChunks(day.Add(23 * time.Hour))
	require.Len(t, chunks, 3)
	var got []string
	for _, c := range chunks {
		for _, it := range export(day, c, "") {
			got = append(got, it.GetEvent().GetId())
			assert.NotEmpty(t, it.GetCursor())
		}
	}
	assert.Equal(t, eventIDs(first), got, "chunks hold the events in time order")

	// Cursor resume: after the 4th event of the second chunk.
	items := export(day, chunks[1], "")
	require.Len(t, items, 10)
	rest := export(day, chunks[1], items[3].GetCursor())
	require.Len(t, rest, 6)
	assert.Equal(t, items[4].GetEvent().GetId(), rest[0].GetEvent().GetId())
	assert.Empty(t, export(day, chunks[1], items[9].GetCursor()))
	assert.Equal(t, first[14].GetID(), rest[0].GetEvent().GetId())
	assert.Equal(t, first[14].GetType(), rest[0].GetEvent().GetType())
	assert.NotNil(t, rest[0].GetEvent().GetUnstructured().AsMap()["uid"])

	// New events make new chunks; old chunks do not change.
	later := g.Events(3, day.Add(2*time.Hour), time.Second)
	next := g.Events(4, day.Add(24*time.Hour+time.Minute), time.Second)
	s.Append(append(slices.Clone(later), next...)...)
	chunks2 := listChunks(day)
	require.Len(t, chunks2, 4)
	assert.Equal(t, chunks, chunks2[:3])
	assert.Equal(t, eventIDs(later), exportedIDs(export(day, chunks2[3], "")))
	nextDay := listChunks(day.Add(24 * time.Hour))
	require.Len(t, nextDay, 1)
	assert.Equal(t, eventIDs(next), exportedIDs(export(day.Add(24*time.Hour), nextDay[0], "")))
	assert.Empty(t, listChunks(day.Add(48*time.Hour)))

	_, err := stream.Collect(clt.ExportUnstructuredEvents(ctx, &auditlogpb.ExportUnstructuredEventsRequest{Date: timestamppb.New(day), Chunk: "missing"}))
	assert.True(t, trace.IsNotFound(err), "%v", err)
	_, err = stream.Collect(clt.ExportUnstructuredEvents(ctx, &auditlogpb.ExportUnstructuredEventsRequest{Date: timestamppb.New(day), Chunk: chunks[0], Cursor: "bogus"}))
	assert.True(t, trace.IsBadParameter(err), "%v", err)
}

func exportedIDs(items []*auditlogpb.ExportEventUnstructured) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.GetEvent().GetId()
	}
	return out
}

func TestBulkExportDisabled(t *testing.T) {
	s, _ := seeded(t, Config{}, 5)
	clt := connect(t, s, IdentityOptions{})
	ctx := testContext(t)
	_, err := stream.Collect(clt.GetEventExportChunks(ctx, &auditlogpb.GetEventExportChunksRequest{Date: timestamppb.New(t0)}))
	assert.True(t, trace.IsNotImplemented(err), "%v", err)
	_, err = stream.Collect(clt.ExportUnstructuredEvents(ctx, &auditlogpb.ExportUnstructuredEventsRequest{Date: timestamppb.New(t0), Chunk: "x"}))
	assert.True(t, trace.IsNotImplemented(err), "%v", err)
}

func TestConcurrentAppendAndSearch(t *testing.T) {
	s := startServer(t, Config{})
	clt := connect(t, s, IdentityOptions{})
	g := NewGenerator(6)
	batches := make([][]apievents.AuditEvent, 20)
	for i := range batches {
		// Every other batch lies in the past, which exercises the merge.
		batches[i] = g.Events(20, t0.Add(time.Duration((i%2)*40+i)*time.Minute), time.Second)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, b := range batches {
			s.Append(b...)
		}
	}()
	ctx := testContext(t)
	for searching := true; searching; {
		select {
		case <-done:
			searching = false
		default:
		}
		items, _, err := clt.SearchUnstructuredEvents(ctx, t0, t0.Add(2*time.Hour), "", nil, 50, types.EventOrderDescending, "")
		require.NoError(t, err)
		for i := 1; i < len(items); i++ {
			require.False(t, items[i].GetTime().AsTime().After(items[i-1].GetTime().AsTime()))
		}
	}
	all, _ := searchAll(t, clt, t0, t0.Add(2*time.Hour), nil, 10000, types.EventOrderAscending)
	require.Len(t, all, 400)
	seen := map[string]bool{}
	for i, it := range all {
		require.False(t, seen[it.GetId()])
		seen[it.GetId()] = true
		if i > 0 {
			require.False(t, it.GetTime().AsTime().Before(all[i-1].GetTime().AsTime()))
		}
	}
}
