package integration

import (
	"encoding/json"
	"sort"
	"testing"
	"time"

	apievents "github.com/gravitational/teleport/api/types/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/flbhost"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/teleportfake"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/testenv"
)

// With format message, each record's "message" is the event's JSON text and
// decodes back to exactly the event, field for field, for every event type
// the test double generates (the audit kinds, and a recording with its print
// events); the record time stays the event's.
func TestFormatMessageIsTheEventJSON(t *testing.T) {
	e := newEnv(t, teleportfake.Config{})
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	gen := teleportfake.NewGenerator(91)
	audit := gen.Events(400, start.Add(time.Second), 100*time.Millisecond+1234567)
	rec, upload := gen.Session("sess-message", start.Add(time.Minute), 40)
	e.srv.Append(audit...)
	e.srv.AddSession("sess-message", rec)
	e.srv.Append(upload)
	audit = append(audit, upload)

	h := host(t, flbhost.Options{})
	idx := initOK(t, h, e.props(start, "format", "message", "sessions", "on", "skip_session_types", "none"))
	_, err := h.Drain(idx, len(audit)+len(rec), 30*time.Second, 20*time.Millisecond)
	require.NoError(t, err, h.Log())

	var gotAudit, gotSession []flbhost.Record
	for _, r := range records(t, h) {
		if r.Body["teleport_stream"] == "session" {
			assert.Equal(t, "sess-message", r.Body["sid"])
			assert.Len(t, r.Body, 3, "message, sid and teleport_stream: %v", r.Body)
			gotSession = append(gotSession, r)
		} else {
			assert.Len(t, r.Body, 1, "only message: %v", r.Body)
			gotAudit = append(gotAudit, r)
		}
	}
	require.Len(t, gotAudit, len(audit))
	require.Len(t, gotSession, len(rec))

	types := map[string]bool{}
	check := func(want apievents.AuditEvent, r flbhost.Record) {
		t.Helper()
		types[want.GetType()] = true
		assert.True(t, want.GetTime().Equal(r.Time), "record time = event time: %v vs %v", want.GetTime(), r.Time)
		msg, ok := r.Body["message"].(string)
		require.True(t, ok, "message is a string: %v", r.Body)
		var got map[string]any
		require.NoError(t, json.Unmarshal([]byte(msg), &got), msg)
		assert.Equal(t, testenv.TeleportJSON(t, want), got, "%s event %s", want.GetType(), want.GetID())
	}
	for i, ev := range audit {
		check(ev, gotAudit[i])
	}
	for i, ev := range rec {
		check(ev, gotSession[i])
	}
	var seen []string
	for typ := range types {
		seen = append(seen, typ)
	}
	sort.Strings(seen)
	assert.Equal(t, []string{
		teleportfake.TypeAccessRequestCreate, teleportfake.TypeAppSessionStart, teleportfake.TypeCertCreate,
		teleportfake.TypeDBSessionQuery, teleportfake.TypeExec, teleportfake.TypeKubeRequest, teleportfake.TypePortForward,
		teleportfake.TypeSessionPrint, teleportfake.TypeResize, teleportfake.TypeRoleCreated, teleportfake.TypeSessionEnd,
		teleportfake.TypeSessionJoin, teleportfake.TypeSessionLeave, teleportfake.TypeSessionStart, teleportfake.TypeSessionUpload,
		teleportfake.TypeUserCreate, teleportfake.TypeUserLogin,
	}, seen, "every event type the test double generates")
}
