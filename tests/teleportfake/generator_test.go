package teleportfake

import (
	"encoding/json"
	"regexp"
	"slices"
	"testing"
	"time"

	apievents "github.com/gravitational/teleport/api/types/events"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func marshalAll(t *testing.T, evs []apievents.AuditEvent) []string {
	t.Helper()
	out := make([]string, len(evs))
	for i, e := range evs {
		b, err := json.Marshal(e)
		require.NoError(t, err)
		out[i] = string(b)
	}
	return out
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestGeneratorDeterministic(t *testing.T) {
	a := marshalAll(t, NewGenerator(42).Events(300, t0, time.Second))
	b := marshalAll(t, NewGenerator(42).Events(300, t0, time.Second))
	c := marshalAll(t, NewGenerator(43).Events(300, t0, time.Second))
	assert.Equal(t, a, b)
	assert.NotEqual(t, a, c)

	ra, ua := NewGenerator(7).Session("s", t0, 30)
	rb, ub := NewGenerator(7).Session("s", t0, 30)
	assert.Equal(t, marshalAll(t, ra), marshalAll(t, rb))
	assert.Equal(t, ua, ub)
}

func TestGeneratorEvents(t *testing.T) {
	const n = 2000
	step := 10 * time.Millisecond
	evs := NewGenerator(1).Events(n, t0, step)
	require.Len(t, evs, n)

	seen := map[string]bool{}
	typeCount := map[string]int{}
	var sizes []int
	for i, e := range evs {
		assert.True(t, e.GetTime().Equal(t0.Add(time.Duration(i)*step)), "event %d time", i)
		assert.Regexp(t, uuidRE, e.GetID())
		assert.False(t, seen[e.GetID()], "duplicate uid %s", e.GetID())
		seen[e.GetID()] = true
		assert.NotEmpty(t, e.GetCode())
		assert.Equal(t, DefaultClusterName, e.GetClusterName())
		typeCount[e.GetType()]++

		b, err := json.Marshal(e)
		require.NoError(t, err)
		sizes = append(sizes, len(b))
		var m map[string]any
		require.NoError(t, json.Unmarshal(b, &m))
		assert.Equal(t, e.GetType(), m["event"])
		assert.Equal(t, e.GetID(), m["uid"])
		switch e.GetType() {
		case TypeSessionUpload:
			assert.NotEmpty(t, m["sid"])
		case TypeCertCreate:
			assert.NotNil(t, m["identity"])
		case TypeUserLogin:
			assert.Contains(t, []any{true, false}, m["success"])
			assert.NotEmpty(t, m["user"])
		default:
			assert.NotEmpty(t, m["user"], "%s has user metadata", e.GetType())
		}
		if ev, ok := e.(interface{ GetSessionID() string }); ok && e.GetType() != TypeKubeRequest {
			assert.NotEmpty(t, ev.GetSessionID(), "%s has a session id", e.GetType())
		}
	}
	assert.Zero(t, typeCount[TypeSessionUpload], "uploads come from Session only")
	for _, typ := range []string{TypeUserLogin, TypeSessionStart, TypeSessionEnd, TypeExec, TypeCertCreate,
		TypeRoleCreated, TypeUserCreate, TypeDBSessionQuery, TypeAppSessionStart, TypeAccessRequestCreate,
		TypeKubeRequest, TypePortForward, TypeSessionJoin} {
		assert.Positive(t, typeCount[typ], "type %s generated", typ)
	}
	codes := map[string]bool{}
	for _, e := range evs {
		if e.GetType() == TypeUserLogin {
			codes[e.GetCode()] = true
		}
	}
	assert.True(t, codes[CodeUserLogin] && codes[CodeUserLoginFailure], "login success and failure")

	slices.Sort(sizes)
	t.Logf("JSON sizes: min %d, median %d, max %d", sizes[0], sizes[len(sizes)/2], sizes[len(sizes)-1])
	assert.GreaterOrEqual(t, sizes[0], 250)
	assert.LessOrEqual(t, sizes[len(sizes)-1], 1600)
	assert.GreaterOrEqual(t, sizes[len(sizes)/2], 300)
	assert.LessOrEqual(t, sizes[len(sizes)/2], 1500)
}

func TestGeneratorSession(t *testing.T) {
	start := t0.Add(time.Minute)
	rec, upload := NewGenerator(9).Session("sid-9", start, 40)
	require.Len(t, rec, 40)
	assert.Equal(t, TypeSessionStart, rec[0].GetType())
	assert.Equal(t, TypeSessionEnd, rec[39].GetType())
	prints, others := 0, 0
	for i, e := range rec {
		assert.Equal(t, int64(i), e.GetIndex())
		if i > 0 {
			assert.True(t, e.GetTime().After(rec[i-1].GetTime()))
		}
		if p, ok := e.(*apievents.SessionPrint); ok {
			prints++
			assert.Empty(t, p.GetID(), "print events carry no uid")
			assert.Equal(t, int64(len(p.Data)), p.Bytes)
		} else {
			others++
			assert.Regexp(t, uuidRE, e.GetID())
			if sm, ok := e.(interface{ GetSessionID() string }); ok {
				assert.Equal(t, "sid-9", sm.GetSessionID())
			}
		}
	}
	assert.Greater(t, prints, 20)
	assert.Greater(t, others, 4)

	up, ok := upload.(*apievents.SessionUpload)
	require.True(t, ok)
	assert.Equal(t, TypeSessionUpload, up.GetType())
	assert.Equal(t, "sid-9", up.SessionID)
	assert.True(t, up.GetTime().After(rec[39].GetTime()))
}
