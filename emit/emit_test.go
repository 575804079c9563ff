package emit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/ugorji/go/codec"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/db"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

func mustStruct(t testing.TB, m map[string]any) *structpb.Struct {
	s, err := structpb.NewStruct(m)
	require.NoError(t, err)
	return s
}

// record encodes s as it arrives from Teleport: protobuf wire bytes.
func record(t testing.TB, ts time.Time, s *structpb.Struct) []byte {
	wire, err := proto.Marshal(s)
	require.NoError(t, err)
	rec, err := (&Encoder{}).AppendRecord(nil, ts.Unix(), int32(ts.Nanosecond()), wire)
	require.NoError(t, err)
	return rec
}

// decodeRecord decodes strictly what Fluent Bit's log event decoder accepts.
func decodeRecord(t testing.TB, b []byte) (time.Time, map[string]any, map[string]any) {
	dec := codec.NewDecoderBytes(b, Handle())
	var ev []any
	require.NoError(t, dec.Decode(&ev))
	require.Len(t, ev, 2)
	hdr, ok := ev[0].([]any)
	require.True(t, ok, "v2 header [time, metadata]")
	require.Len(t, hdr, 2)
	et, ok := hdr[0].(*EventTime)
	if !ok {
		v, ok2 := hdr[0].(EventTime)
		require.True(t, ok2, "timestamp is ext 0, got %T", hdr[0])
		et = &v
	}
	meta, ok := hdr[1].(map[string]any)
	require.True(t, ok)
	body, ok := ev[1].(map[string]any)
	require.True(t, ok)
	var rest any
	require.Error(t, dec.Decode(&rest), "no trailing bytes")
	return et.Time, meta, body
}

func TestRecordShapeAndTypes(t *testing.T) {
	ts := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)
	body := mustStruct(t, map[string]any{
		"event": "user.login", "uid": "u-1", "ei": float64(7), "success": true, "big": float64(1 << 40),
		"ratio": 0.25, "neg": float64(-3), "none": nil, "time": "2026-03-04T05:06:07.123Z",
		"addr":  map[string]any{"remote": "10.0.0.1:5000", "port": float64(22)},
		"roles": []any{"access", "editor", float64(3), map[string]any{"x": 1.5}},
	})
	rec := record(t, ts, body)

	// The ext timestamp is exactly ext type 0, 8 bytes, big-endian sec+nsec.
	assert.Equal(t, []byte{0x92, 0x92, 0xd7, 0x00}, rec[:4])

	gotTime, meta, got := decodeRecord(t, rec)
	assert.True(t, ts.Equal(gotTime), "nanoseconds kept: %v", gotTime)
	assert.Empty(t, meta)
	assert.Equal(t, "user.login", got["event"])
	assert.IsType(t, int64(0), got["ei"], "integers stay integers")
	assert.EqualValues(t, 7, got["ei"])
	assert.EqualValues(t, int64(1<<40), got["big"])
	assert.EqualValues(t, -3, got["neg"])
	assert.Equal(t, 0.25, got["ratio"])
	assert.Equal(t, true, got["success"])
	assert.Nil(t, got["none"])
	assert.Contains(t, got, "none")
	assert.Equal(t, "2026-03-04T05:06:07.123Z", got["time"])
	addr := got["addr"].(map[string]any)
	assert.EqualValues(t, 22, addr["port"])
	roles := got["roles"].([]any)
	assert.Equal(t, "access", roles[0])
	assert.EqualValues(t, 3, roles[2])
	assert.Equal(t, 1.5, roles[3].(map[string]any)["x"])
}

func TestRecordIsDeterministic(t *testing.T) {
	m := map[string]any{}
	for i := 0; i < 50; i++ {
		m[fmt.Sprintf("k%02d", i)] = float64(i)
	}
	first := record(t, time.Unix(1, 0), mustStruct(t, m))
	for i := 0; i < 20; i++ {
		again := record(t, time.Unix(1, 0), mustStruct(t, m))
		require.True(t, bytes.Equal(first, again), "replays must encode identically")
	}
}

// Every msgpack width boundary must decode to the same value through codec.
func TestRecordBoundaries(t *testing.T) {
	nums := []float64{0, 1, 127, 128, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, 1 << 53,
		-1, -32, -33, -128, -129, -32768, -32769, -(1 << 31), -(1 << 31) - 1, -(1 << 53), 0.5, -2.75, 1e300}
	var list []any
	for _, n := range nums {
		list = append(list, n)
	}
	m := map[string]any{"nums": list}
	for _, n := range []int{0, 31, 32, 255, 256, 65535, 65536} {
		m[fmt.Sprintf("s%d", n)] = strings.Repeat("x", n)
	}
	for _, n := range []int{15, 16} {
		sub := map[string]any{}
		var arr []any
		for i := 0; i < n; i++ {
			sub[fmt.Sprintf("k%d", i)] = float64(i)
			arr = append(arr, "v")
		}
		m[fmt.Sprintf("map%d", n)] = sub
		m[fmt.Sprintf("arr%d", n)] = arr
	}
	_, _, got := decodeRecord(t, record(t, time.Unix(5, 6), mustStruct(t, m)))
	gotNums := got["nums"].([]any)
	for i, n := range nums {
		if n == math.Trunc(n) && math.Abs(n) < 1<<63 {
			assert.EqualValues(t, int64(n), toInt64(t, gotNums[i]), "%v", n)
		} else {
			assert.Equal(t, n, gotNums[i], "%v", n)
		}
	}
	for _, n := range []int{0, 31, 32, 255, 256, 65535, 65536} {
		assert.Len(t, got[fmt.Sprintf("s%d", n)], n)
	}
	assert.Len(t, got["map16"], 16)
	assert.Len(t, got["arr16"], 16)
	assert.Len(t, got["map15"], 15)
}

func toInt64(t testing.TB, v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case uint64:
		return int64(x)
	}
	t.Fatalf("%v (%T) is not an integer", v, v)
	return 0
}

// fuzzStruct is a fuzzed JSON document as a Struct, if it is one.
func fuzzStruct(doc string) (*structpb.Struct, bool) {
	var m map[string]any
	if json.Unmarshal([]byte(doc), &m) != nil {
		return nil, false
	}
	s, err := structpb.NewStruct(m)
	return s, err == nil
}

// FuzzRecord checks that any JSON document survives AppendRecord → codec.
func FuzzRecord(f *testing.F) {
	f.Add(`{"event":"user.login","ei":3,"x":[1,2.5,{"y":null}],"ok":true}`, int64(1700000000), int64(5))
	f.Add(`{}`, int64(0), int64(0))
	f.Fuzz(func(t *testing.T, doc string, sec, nsec int64) {
		s, ok := fuzzStruct(doc)
		if !ok {
			return
		}
		sec = sec & 0x7fffffff
		nsec = (nsec & 0x7fffffff) % 1e9
		ts := time.Unix(sec, nsec)
		gotTime, _, got := decodeRecord(t, record(t, ts, s))
		require.True(t, ts.Equal(gotTime))
		want := s.AsMap() // numbers as float64
		require.Equal(t, normalize(want), normalize(got))
	})
}

// normalize makes integers and whole floats comparable.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case int64:
		return float64(x)
	case uint64:
		return float64(x)
	}
	return v
}

// Protobuf details: repeated map keys (last wins), an empty Value (null),
// unknown fields (ignored), and malformed input (an error, never a panic).
func TestRecordWireEdgeCases(t *testing.T) {
	enc := &Encoder{}
	key := func(k string, v []byte) []byte {
		e := protowire.AppendTag(nil, 1, protowire.BytesType)
		e = protowire.AppendString(e, k)
		e = protowire.AppendTag(e, 2, protowire.BytesType)
		e = protowire.AppendBytes(e, v)
		out := protowire.AppendTag(nil, 1, protowire.BytesType)
		return protowire.AppendBytes(out, e)
	}
	str := func(s string) []byte {
		return protowire.AppendString(protowire.AppendTag(nil, 3, protowire.BytesType), s)
	}
	var body []byte
	body = append(body, key("a", str("first"))...)
	body = append(body, key("b", nil)...)
	body = append(body, key("a", str("second"))...)
	body = protowire.AppendVarint(protowire.AppendTag(body, 9, protowire.VarintType), 42) // unknown field
	rec, err := enc.AppendRecord(nil, 1, 0, body)
	require.NoError(t, err)
	_, _, got := decodeRecord(t, rec)
	assert.Equal(t, map[string]any{"a": "second", "b": nil}, got)

	for _, bad := range [][]byte{{0x0a}, {0x0a, 0x05, 0x0a}, {0xff, 0xff, 0xff}, key("x", []byte{0x11, 0x01})} {
		_, err := enc.AppendRecord(nil, 1, 0, bad)
		assert.Error(t, err, "% x", bad)
	}
}

// FuzzRecordWire: arbitrary bytes never panic.
func FuzzRecordWire(f *testing.F) {
	s, _ := structpb.NewStruct(map[string]any{"a": []any{1.5, "x", map[string]any{"b": true}}})
	wire, _ := proto.Marshal(s)
	f.Add(wire)
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := (&Encoder{}).AppendRecord(nil, 1, 2, b)
		if err == nil {
			decodeRecord(t, rec)
		}
	})
}

type mark struct{ k, v string }

func (m mark) Key() string   { return m.k }
func (m mark) Value() []byte { return []byte(m.v) }

func TestQueueTakeLimitsAndMarks(t *testing.T) {
	q := NewQueue(100, 1000)
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		require.NoError(t, q.Put(ctx, Item{Rec: bytes.Repeat([]byte{byte(i)}, 10), Mark: mark{"search", fmt.Sprint(i)}}))
	}
	require.NoError(t, q.Put(ctx, Item{Mark: mark{"other", "x"}}))

	b := q.Take(3, 1000)
	require.Len(t, b.Records, 3)
	assert.Equal(t, 30, b.Size)
	require.Len(t, b.Marks, 1)
	assert.Equal(t, "2", string(b.Marks[0].Value()), "last position of the key in the batch")

	b = q.Take(100, 25) // byte limit: 2 records of 10
	require.Len(t, b.Records, 2)
	assert.Equal(t, "4", string(b.Marks[0].Value()))

	b = q.Take(100, 1000)
	require.Len(t, b.Records, 5)
	require.Len(t, b.Marks, 2)
	assert.Equal(t, "9", string(b.Marks[0].Value()))
	assert.Equal(t, "other", b.Marks[1].Key())
	buf := make([]byte, b.Size)
	b.CopyTo(buf)
	assert.Equal(t, byte(5), buf[0])
	assert.Equal(t, byte(9), buf[49])

	b = q.Take(100, 1000)
	assert.Empty(t, b.Records)
	assert.Empty(t, b.Marks)
	assert.Empty(t, b.Seen)
	r, n := q.Len()
	assert.Zero(t, r)
	assert.Zero(t, n)
}

func TestQueueOversizedRecordStillMoves(t *testing.T) {
	q := NewQueue(10, 100)
	require.NoError(t, q.Put(context.Background(), Item{Rec: make([]byte, 500)}))
	b := q.Take(10, 100)
	require.Len(t, b.Records, 1, "one record over the byte limit is handed over alone")
}

func TestQueuePositionOnlyItemsNeedNoRoom(t *testing.T) {
	q := NewQueue(1, 10)
	ctx := context.Background()
	require.NoError(t, q.Put(ctx, Item{Rec: []byte("0123456789"), Mark: mark{"a", "1"}}))
	done := make(chan error, 1)
	go func() { done <- q.Put(ctx, Item{Mark: mark{"a", "2"}}) }()
	require.NoError(t, <-done, "a position never waits")
	b := q.Take(1, 10)
	assert.Equal(t, "2", string(b.Marks[0].Value()))
}

func TestQueueCoalescesRunsOfPositions(t *testing.T) {
	q := NewQueue(10, 100)
	ctx := context.Background()
	for i := 0; i < 1000; i++ {
		require.NoError(t, q.Put(ctx, Item{Mark: mark{"search", fmt.Sprint(i)}}))
	}
	assert.Len(t, q.items, 1)
	require.NoError(t, q.Put(ctx, Item{Rec: []byte("r"), Mark: mark{"search", "r"}}))
	require.NoError(t, q.Put(ctx, Item{Mark: mark{"search", "after"}}))
	assert.Len(t, q.items, 3, "a record ends the run")
	b := q.Take(10, 100)
	assert.Equal(t, "after", string(b.Marks[0].Value()))
}

// Positions of several keys in turn (bulk chunks, recordings whose prints
// are skipped) while the queue is full and Fluent Bit holds the collector
// back: one item per key, however many arrive, and each key's last
// position reaches the batch.
func TestQueuePositionsOfAlternatingKeysStayBounded(t *testing.T) {
	q := NewQueue(1, 100)
	ctx := context.Background()
	require.NoError(t, q.Put(ctx, Item{Rec: []byte("r"), Mark: mark{"a", "r"}}))
	for i := 0; i < 10000; i++ {
		key := []string{"a", "b", "c"}[i%3]
		require.NoError(t, q.Put(ctx, Item{Mark: mark{key, fmt.Sprint(i)}}))
	}
	assert.Equal(t, 4, len(q.items), "the record and one position per key")
	b := q.Take(1, 100)
	require.Len(t, b.Records, 1)
	got := map[string]string{}
	for _, m := range b.Marks {
		got[m.Key()] = string(m.Value())
	}
	assert.Equal(t, map[string]string{"a": "9999", "b": "9997", "c": "9998"}, got)

	// After the take, the run starts over behind the next record.
	require.NoError(t, q.Put(ctx, Item{Mark: mark{"a", "x"}}))
	require.NoError(t, q.Put(ctx, Item{Rec: []byte("s"), Mark: mark{"b", "s"}}))
	require.NoError(t, q.Put(ctx, Item{Mark: mark{"a", "y"}}))
	assert.Len(t, q.items, 3, "a record ends the run")
	b = q.Take(1, 100)
	assert.Equal(t, "y", string(b.Marks[0].Value()))
}

func TestQueueBlocksUntilTakeAndHonoursContext(t *testing.T) {
	q := NewQueue(2, 1000)
	ctx := context.Background()
	require.NoError(t, q.Put(ctx, Item{Rec: []byte("a")}))
	require.NoError(t, q.Put(ctx, Item{Rec: []byte("b")}))

	// Several producers wait; one Take of two records wakes them all.
	done := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() { done <- q.Put(ctx, Item{Rec: []byte("c")}) }()
	}
	// Both producers reach the full queue and wait; neither gets in.
	waitForWaits(t, q, 2)
	select {
	case err := <-done:
		t.Fatalf("Put returned while the queue was full: %v", err)
	default:
	}
	r, _ := q.Len()
	assert.Equal(t, 2, r, "nothing added while full")
	q.Take(10, 1000)
	for i := 0; i < 2; i++ {
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(5 * time.Second):
			t.Fatal("producer not woken by Take")
		}
	}

	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- q.Put(cctx, Item{Rec: []byte("d")}) }()
	waitForWaits(t, q, 3) // cancelled while waiting, not before
	cancel()
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("Put ignored cancellation")
	}
}

// waitForWaits waits until Put has found the queue full n times in all.
func waitForWaits(t *testing.T, q *Queue, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.waits >= n
	}, 5*time.Second, time.Millisecond, "producers never blocked on the full queue")
}

// benchmarkEvent is a 24-field session.start, a typical audit event.
var benchmarkEvent = map[string]any{
	"event": "session.start", "code": "T2000I", "uid": "6d2a6f9c-2f1e-4d8e-9d4b-1c8a3b7e0f21", "time": "2026-03-04T05:06:07.123Z",
	"cluster_name": "example.teleport.sh", "user": "alice@example.com", "login": "root", "sid": "b2a1f7d0-9a3c-4c59-8f1d-3e7a9d2c6b10",
	"server_id": "3f9c2a1b-7d6e-4f5a-9b8c-1d2e3f4a5b6c", "server_hostname": "ip-10-0-1-23", "server_addr": "10.0.1.23:3022",
	"addr.local": "10.0.1.23:3022", "addr.remote": "192.0.2.10:53412", "size": "80:25", "ei": float64(0), "namespace": "default",
	"server_labels": map[string]any{"env": "prod", "team": "payments", "teleport.internal/resource-id": "abc"},
	"user_roles":    []any{"access", "editor"}, "user_kind": float64(1), "private_key_policy": "none", "session_recording": "node",
	"proto": "ssh", "initial_command": []any{""},
}

func BenchmarkRecord(b *testing.B) {
	s, _ := structpb.NewStruct(benchmarkEvent)
	wire, _ := proto.Marshal(s)
	var enc Encoder
	var buf []byte
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf, _ = enc.AppendRecord(buf[:0], 1700000000, 5, wire)
	}
}

func TestSessionRecordAddsStreamAndSid(t *testing.T) {
	enc := &Encoder{}
	wire, err := proto.Marshal(mustStruct(t, map[string]any{"event": "print", "ei": float64(3), "data": "aGk="}))
	require.NoError(t, err)
	rec, err := enc.AppendSessionRecord(nil, 1, 0, wire, "sess-1")
	require.NoError(t, err)
	_, _, got := decodeRecord(t, rec)
	assert.Equal(t, map[string]any{"event": "print", "ei": int64(3), "data": "aGk=", "sid": "sess-1", "teleport_stream": "session"}, got)

	// An event's own sid is kept.
	wire, err = proto.Marshal(mustStruct(t, map[string]any{"event": "session.start", "sid": "own"}))
	require.NoError(t, err)
	rec, err = enc.AppendSessionRecord(nil, 1, 0, wire, "other")
	require.NoError(t, err)
	_, _, got = decodeRecord(t, rec)
	assert.Equal(t, "own", got["sid"])
	assert.Equal(t, "session", got["teleport_stream"])
}

func TestTakeIntoSharesTheLimits(t *testing.T) {
	a, b := NewQueue(100, 1000), NewQueue(100, 1000)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		require.NoError(t, a.Put(ctx, Item{Rec: []byte("aaaaaaaaaa"), Mark: mark{"a", fmt.Sprint(i)}}))
		require.NoError(t, b.Put(ctx, Item{Rec: []byte("bbbbbbbbbb"), Mark: mark{"b", fmt.Sprint(i)}, Seen: &db.Seen{Second: 7, UID: fmt.Sprint(i)}}))
	}
	batch := a.Take(7, 1000)
	b.TakeInto(batch, 7, 1000)
	assert.Len(t, batch.Records, 7, "5 from a, 2 from b")
	assert.Equal(t, []db.Seen{{Second: 7, UID: "0"}, {Second: 7, UID: "1"}}, batch.Seen)
	r, _ := b.Len()
	assert.Equal(t, 3, r)
}

// BenchmarkSessionRecord: a short print event, the bulk of a recording.
func BenchmarkSessionRecord(b *testing.B) {
	s, _ := structpb.NewStruct(map[string]any{
		"event": "print", "ei": float64(42), "ci": float64(41), "time": "2026-03-04T05:06:07.123Z",
		"data": "bHMgLWxhDQo=", "bytes": float64(8), "ms": float64(1234), "offset": float64(5678),
	})
	wire, _ := proto.Marshal(s)
	var enc Encoder
	var buf []byte
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf, _ = enc.AppendSessionRecord(buf[:0], 1700000000, 5, wire, "b2a1f7d0-9a3c-4c59-8f1d-3e7a9d2c6b10")
	}
}

// FuzzSessionRecord: the added fields encode exactly as if the event had
// carried them ahead of its own fields (so its own sid wins).
func FuzzSessionRecord(f *testing.F) {
	f.Add(`{"event":"print","ei":3,"data":"aGk="}`, "sess-1")
	f.Add(`{"event":"session.start","sid":"own","teleport_stream":"x"}`, "other")
	f.Add(`{}`, "")
	f.Fuzz(func(t *testing.T, doc, sid string) {
		s, ok := fuzzStruct(doc)
		if !ok {
			return
		}
		wire, err := proto.Marshal(s)
		require.NoError(t, err)
		// By hand: sid may be any bytes, which proto.Marshal would refuse.
		field := func(k, v string) []byte {
			val := protowire.AppendString(protowire.AppendTag(nil, 3, protowire.BytesType), v)
			kv := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), k)
			kv = protowire.AppendBytes(protowire.AppendTag(kv, 2, protowire.BytesType), val)
			return protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), kv)
		}
		body := append(append(field(StreamKey, "session"), field("sid", sid)...), wire...)
		enc := &Encoder{}
		want, err := enc.AppendRecord(nil, 1, 2, body)
		require.NoError(t, err)
		for i := 0; i < 2; i++ { // the second time with the encoder's scratch in use
			got, err := enc.AppendSessionRecord(nil, 1, 2, wire, sid)
			require.NoError(t, err)
			require.Equal(t, want, got)
		}
	})
}
