package teleportfake

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	apievents "github.com/gravitational/teleport/api/types/events"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// requireSameUnstructured checks the fast encoding against api's ToUnstructured.
func requireSameUnstructured(t *testing.T, ev apievents.AuditEvent) {
	t.Helper()
	want, err := apievents.ToUnstructured(ev)
	require.NoError(t, err)
	payload, err := json.Marshal(ev)
	require.NoError(t, err)
	_, fast := jsonToStruct(payload, nil)
	require.True(t, fast, "the fast path handles %s", payload)
	body, id, err := encodeUnstructured(ev)
	require.NoError(t, err)
	got := &auditlogpb.EventUnstructured{}
	require.NoError(t, proto.Unmarshal(body, got))
	require.Equal(t, want.GetId(), id)
	if !proto.Equal(want, got) {
		t.Fatalf("%s event %s differs:\nToUnstructured: %s\nfast: %s", ev.GetType(), ev.GetID(), prototext.Format(want), prototext.Format(got))
	}
}

func TestEncodeUnstructuredMatchesAPI(t *testing.T) {
	g := NewGenerator(11)
	for _, ev := range g.Events(500, t0, 1234567*time.Nanosecond) {
		requireSameUnstructured(t, ev)
	}
	rec, upload := g.Session("s-wire", t0, 40)
	for _, ev := range append(rec, upload) {
		requireSameUnstructured(t, ev)
	}

	tricky := &apievents.UserLogin{
		Metadata: apievents.Metadata{Type: TypeUserLogin, Code: CodeUserLogin, Time: time.Unix(-5, 7).UTC(), Index: -3},
		UserMetadata: apievents.UserMetadata{
			User: "quote\" backslash\\ slash/ ctl\b\f\n\r\t\x00\x1f <tag>&amp; \u2028\u2029 é 漢字 😀 \xff invalid",
		},
		IdentityAttributes: apievents.MustEncodeMap(map[string]any{
			"numbers":  []any{0, -1, 1.5, -2.5e-300, 1e300, 12345678901234567890.0, 0.1},
			"nested":   map[string]any{"a": map[string]any{"b": []any{[]any{}, map[string]any{}, nil, true, false}}},
			"empty":    "",
			"null":     nil,
			"unicode":  "\u00e9\U0001F600",
			"":         "empty key",
			"dup\"key": "x",
		}),
	}
	requireSameUnstructured(t, tricky)

	// An event without a uid gets the SHA-256 of its JSON as id.
	requireSameUnstructured(t, &apievents.SessionPrint{
		Metadata: apievents.Metadata{Type: TypeSessionPrint, Time: t0},
		Data:     []byte("\x1b[1mbinary\x00\xff data"),
		Bytes:    17,
	})
}

func randomJSON(r *rand.Rand, depth int) any {
	switch k := r.Intn(9); {
	case depth > 4 || k == 0:
		return r.NormFloat64() * 1e6
	case k == 1:
		return r.Intn(3) == 0
	case k == 2:
		return nil
	case k == 3:
		var sb strings.Builder
		for range r.Intn(12) {
			sb.WriteRune([]rune("aZ\"\\/\n\t\x01<>&é漢😀\u2028 ")[r.Intn(15)])
		}
		return sb.String()
	case k < 6:
		l := make([]any, r.Intn(4))
		for i := range l {
			l[i] = randomJSON(r, depth+1)
		}
		return l
	default:
		m := map[string]any{}
		for i := range r.Intn(5) {
			m[fmt.Sprintf("k%d\"%d", i, r.Intn(100))] = randomJSON(r, depth+1)
		}
		return m
	}
}

func TestJSONToStructRandom(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := range 300 {
		obj := map[string]any{"root": randomJSON(r, 0), "n": i}
		data, err := json.Marshal(obj)
		require.NoError(t, err)
		want := &structpb.Struct{}
		require.NoError(t, want.UnmarshalJSON(data))
		enc, ok := jsonToStruct(data, nil)
		require.True(t, ok, "%s", data)
		got := &structpb.Struct{}
		require.NoError(t, proto.Unmarshal(enc, got))
		if !proto.Equal(want, got) {
			t.Fatalf("%s:\nwant %s\ngot  %s", data, prototext.Format(want), prototext.Format(got))
		}
	}
	// Whitespace is allowed; malformed input is refused (the caller falls back).
	enc, ok := jsonToStruct([]byte(" { \"a\" : [ 1 , true ] } "), nil)
	require.True(t, ok)
	got := &structpb.Struct{}
	require.NoError(t, proto.Unmarshal(enc, got))
	require.Equal(t, map[string]any{"a": []any{1.0, true}}, got.AsMap())
	for _, bad := range []string{``, `[]`, `{`, `{"a"}`, `{"a":}`, `{"a":tru}`, `{"a":1,}`, `{"a":"\ud800"}`, `{"a":1e999}`, `{} x`} {
		_, ok := jsonToStruct([]byte(bad), nil)
		require.False(t, ok, bad)
	}
}
