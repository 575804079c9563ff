package emit

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// messageText is the "message" of a record the Encoder wrote with Message on,
// checked to be the body's only field.
func messageText(t testing.TB, rec []byte) (time.Time, string) {
	ts, meta, body := decodeRecord(t, rec)
	require.Empty(t, meta)
	require.Len(t, body, 1, "the body is only the message: %v", body)
	msg, ok := body[MessageKey].(string)
	require.True(t, ok, "message is a string: %v", body)
	return ts, msg
}

func TestMessageRecordHoldsTheEventJSON(t *testing.T) {
	ts := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)
	doc := map[string]any{
		"event": "user.login", "uid": "u-1", "ei": float64(7), "success": true, "big": float64(1 << 40),
		"ratio": 0.25, "neg": float64(-3), "none": nil, "time": "2026-03-04T05:06:07.123Z",
		"addr":  map[string]any{"remote": "10.0.0.1:5000", "port": float64(22)},
		"roles": []any{"access", "editor", float64(3), map[string]any{"x": 1.5}, []any{}},
		"empty": map[string]any{},
	}
	wire, err := proto.Marshal(mustStruct(t, doc))
	require.NoError(t, err)
	rec, err := (&Encoder{Message: true}).AppendRecord(nil, ts.Unix(), int32(ts.Nanosecond()), wire)
	require.NoError(t, err)
	gotTime, msg := messageText(t, rec)
	assert.True(t, ts.Equal(gotTime), "the record time is the event time, nanoseconds kept: %v", gotTime)
	assert.Equal(t, `{"addr":{"port":22,"remote":"10.0.0.1:5000"},"big":1099511627776,"ei":7,"empty":{},"event":"user.login",`+
		`"neg":-3,"none":null,"ratio":0.25,"roles":["access","editor",3,{"x":1.5},[]],"success":true,"time":"2026-03-04T05:06:07.123Z","uid":"u-1"}`, msg)
	var back map[string]any
	require.NoError(t, json.Unmarshal([]byte(msg), &back))
	assert.Equal(t, doc, back)
}

func TestMessageSessionRecordKeepsRouting(t *testing.T) {
	wire, err := proto.Marshal(mustStruct(t, map[string]any{"event": "session.start", "sid": "own", "ei": float64(0)}))
	require.NoError(t, err)
	rec, err := (&Encoder{Message: true}).AppendSessionRecord(nil, 1, 0, wire, "sess-1")
	require.NoError(t, err)
	_, _, body := decodeRecord(t, rec)
	assert.Equal(t, map[string]any{
		"message": `{"ei":0,"event":"session.start","sid":"own"}`, "sid": "sess-1", "teleport_stream": "session",
	}, body, "the event as it is, with the routing fields beside it")
}

// Strings and numbers as encoding/json writes them, so that they decode to
// the same values; bytes that are not UTF-8 become U+FFFD as there.
func TestJSONStringsAndNumbers(t *testing.T) {
	enc := &Encoder{}
	for in, want := range map[string]string{
		"plain": `"plain"`, `q"b\s`: `"q\"b\\s"`, "\n\r\t\b\f\x00\x1f\x7f": `"\n\r\t\u0008\u000c\u0000\u001f` + "\x7f\"",
		"é漢😀": `"é漢😀"`, "bad\xffutf8\xc3": `"bad\ufffdutf8\ufffd"`, "<&>": `"<&>"`,
	} {
		assert.Equal(t, want, string(appendJSONString(nil, []byte(in))), "%q", in)
		var back string
		require.NoError(t, json.Unmarshal([]byte(want), &back))
		assert.Equal(t, strings.ToValidUTF8(in, "\uFFFD"), back)
	}
	for _, f := range []float64{0, -1, 1 << 53, 0.1, -2.5e-300, 1e-6, 1e-7, 1e20, 1e21, 123456789012345678901234.0, 1e300, -0.0, 0.5, math.MaxInt64, math.MinInt64} {
		got, err := appendJSONNumber(nil, f)
		require.NoError(t, err)
		var back float64
		require.NoError(t, json.Unmarshal(got, &back), "%s", got)
		assert.Equal(t, f, back, "%s", got)
		if n, whole := wholeNumber(f); whole {
			assert.Equal(t, json.Number(got).String(), strings.TrimSpace(string(mustJSON(t, n))), "whole numbers as integers")
		} else {
			assert.Equal(t, string(mustJSON(t, f)), string(got), "as encoding/json writes it")
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		_, err := appendJSONNumber(nil, f)
		assert.Error(t, err, "%v has no JSON form", f)
	}
	// A Struct with an infinite number fails the record instead of writing
	// text that is not JSON.
	num := protowire.AppendFixed64(protowire.AppendTag(nil, kindNumber, protowire.Fixed64Type), math.Float64bits(math.Inf(1)))
	kv := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "n")
	kv = protowire.AppendBytes(protowire.AppendTag(kv, 2, protowire.BytesType), num)
	_, err := (&Encoder{Message: true}).AppendRecord(nil, 1, 0, protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), kv))
	assert.Error(t, err)
	_, err = enc.AppendJSON(nil, []byte{0x0a, 0x05, 0x0a})
	assert.Error(t, err, "malformed protobuf")
}

func mustJSON(t testing.TB, v any) []byte {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// A message record costs no allocation once the encoder's scratch has grown.
func TestMessageRecordDoesNotAllocate(t *testing.T) {
	wire, err := proto.Marshal(mustStruct(t, benchmarkEvent))
	require.NoError(t, err)
	enc := &Encoder{Message: true}
	buf, err := enc.AppendRecord(nil, 1700000000, 5, wire)
	require.NoError(t, err)
	allocs := testing.AllocsPerRun(100, func() {
		buf, _ = enc.AppendRecord(buf[:0], 1700000000, 5, wire)
	})
	assert.Zero(t, allocs)
}

// FuzzMessage checks that any JSON document comes back from its Struct as
// JSON text that decodes to the same document.
func FuzzMessage(f *testing.F) {
	f.Add(`{"event":"user.login","ei":3,"x":[1,2.5,{"y":null}],"ok":true,"s":"a\"\\\u0001é"}`)
	f.Add(`{}`)
	f.Fuzz(func(t *testing.T, doc string) {
		s, ok := fuzzStruct(doc)
		if !ok {
			return
		}
		wire, err := proto.Marshal(s)
		require.NoError(t, err)
		rec, err := (&Encoder{Message: true}).AppendRecord(nil, 1, 2, wire)
		require.NoError(t, err)
		_, msg := messageText(t, rec)
		var back map[string]any
		require.NoError(t, json.Unmarshal([]byte(msg), &back), msg)
		require.Equal(t, s.AsMap(), back)
	})
}

func BenchmarkMessageRecord(b *testing.B) {
	wire, _ := proto.Marshal(mustStruct(b, benchmarkEvent))
	enc := Encoder{Message: true}
	var buf []byte
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf, _ = enc.AppendRecord(buf[:0], 1700000000, 5, wire)
	}
}
