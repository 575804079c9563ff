package handover

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/db"
)

type nopLog struct{}

func (nopLog) Errorf(string, ...any) {}
func (nopLog) Warnf(string, ...any)  {}
func (nopLog) Infof(string, ...any)  {}
func (nopLog) Debugf(string, ...any) {}

func TestClaimSaveAndTakeOver(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientset()
	a := New(c.CoreV1(), "ns", "state", "pod-a")
	st, prev, v1, err := a.Claim(ctx)
	require.NoError(t, err)
	require.Nil(t, st, "nothing handed over yet")
	require.Empty(t, prev)
	_ = v1 // the fake clientset keeps no resourceVersions: tests/kubeapi checks them

	saved := State{Space: "cluster/teleport", Saved: time.Unix(1700000000, 5).UTC(), Pairs: []db.Pair{
		{Key: "search", Val: []byte(`{"from":1700000000}`)}, {Key: "seen/2026-12-04/x", Val: make([]byte, 32)},
	}}
	v2, leftOut, err := a.Save(ctx, saved)
	require.NoError(t, err)
	require.False(t, leftOut)

	b := New(c.CoreV1(), "ns", "state", "pod-b")
	got, prev, _, err := b.Claim(ctx)
	require.NoError(t, err)
	require.Equal(t, v2, prev) // both "" with the fake
	saved.Holder = "pod-a"
	require.Equal(t, &saved, got)
}

// A busy bulk export: positions of every chunk of three open dates, and a
// day of the delivered-event index. The numbers say how much fits.
func TestStateSize(t *testing.T) {
	dir := t.TempDir()
	store, err := db.Open(dir, nopLog{})
	require.NoError(t, err)
	defer store.Close()
	sp := store.Space("cluster/teleport")
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	var marks []db.Mark
	for d := range 3 {
		date := now.AddDate(0, 0, -d).Format(time.DateOnly)
		for range 500 {
			marks = append(marks, mark{"bulk/" + date + "/" + randHex(18), []byte(`{"cursor":"` + randHex(48) + `"}`)})
		}
	}
	marks = append(marks, mark{"mode", []byte("bulk")}, mark{"start_time", []byte(now.Format(time.RFC3339))})
	require.NoError(t, sp.Commit(marks, nil))
	positions, err := Snapshot(sp, now, time.Minute)
	require.NoError(t, err)
	t.Logf("1,500 chunk cursors: %d pairs, %d bytes compressed", len(positions), Size(positions))
	require.Less(t, Size(positions), MaxStateBytes/4)

	// The index of the last hour, in batches of 500 as commits write it.
	for events := 0; events < 40000; events += 500 {
		var seen []db.Seen
		for range 500 {
			seen = append(seen, db.Seen{Second: now.Unix() - 60, UID: randHex(16)})
		}
		require.NoError(t, sp.Commit(nil, seen))
	}
	all, err := Snapshot(sp, now, time.Minute)
	require.NoError(t, err)
	size := Size(all)
	t.Logf("with 40,000 indexed events: %d bytes compressed (%.1f bytes an event)", size, float64(size-Size(positions))/40000)
	require.Less(t, size, MaxStateBytes)

	// Twice as many do not fit: the state goes without its index.
	for events := 0; events < 40000; events += 500 {
		var seen []db.Seen
		for range 500 {
			seen = append(seen, db.Seen{Second: now.Unix() - 60, UID: randHex(16)})
		}
		require.NoError(t, sp.Commit(nil, seen))
	}
	all, err = Snapshot(sp, now, time.Minute)
	require.NoError(t, err)
	require.Greater(t, Size(all), MaxStateBytes)
	k := New(fake.NewClientset().CoreV1(), "ns", "state", "pod-a")
	_, _, _, err = k.Claim(context.Background())
	require.NoError(t, err)
	_, leftOut, err := k.Save(context.Background(), State{Space: "cluster/teleport", Pairs: all})
	require.NoError(t, err)
	require.True(t, leftOut)
}

type mark struct {
	key string
	val []byte
}

func (m mark) Key() string   { return m.key }
func (m mark) Value() []byte { return m.val }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
