package input

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/conf"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/db"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/handover"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/teleportsrc"
)

func TestLeaseName(t *testing.T) {
	require.Equal(t, "fluent-bit-teleport-teleport.example.com-teleport.0", LeaseName("teleport.example.com:443", "teleport.0"))
	require.Equal(t, "fluent-bit-teleport-auth.example.com-prod-audit", LeaseName("Auth.Example.com:3025", "Prod_Audit"))
	require.NotEqual(t, LeaseName("a.example.com:443", "x"), LeaseName("b.example.com:443", "x"), "two clusters, two Leases")
	require.Equal(t, "fluent-bit-teleport-h", LeaseName("h:1", "__"))
	long := LeaseName("h:1", strings.Repeat("a", 300))
	require.Len(t, long, 253)
}

func TestIdentityFromDownwardAPI(t *testing.T) {
	t.Setenv("POD_NAME", "fluent-bit-x7k2p")
	t.Setenv("NODE_NAME", "node-3")
	require.Equal(t, "fluent-bit-x7k2p@node-3", Identity())
}

// restore copies the handed-over state unless this pod saved it last, and
// replays replay_margin after a holder that did not stop cleanly.
func TestRestoreHandedOverState(t *testing.T) {
	store, err := db.Open(filepath.Join(t.TempDir(), "db"), &lines{})
	require.NoError(t, err)
	defer store.Close()
	cfg, err := conf.Parse(conf.MapGetter{"addr": "a:1", "identity_file": "i", "db": "d", "replay_margin": "30s"})
	require.NoError(t, err)
	l := &lines{}
	x := &Instance{cfg: cfg, db: store, log: l, now: time.Now, lead: &leadership{lease: "lease"}}
	sp := store.Space("c/teleport.0")
	mine := teleportsrc.SearchPosition{From: 1000, Tail: []string{"a"}}
	require.NoError(t, sp.Commit([]db.Mark{mine}, nil))
	theirs := teleportsrc.SearchPosition{From: 2000, Tail: []string{"b"}}
	st := &handover.State{Space: "c/teleport.0", Holder: "pod-b", Saved: time.Now(), Pairs: []db.Pair{{Key: teleportsrc.SearchKey, Val: theirs.Value()}}}
	search := func() teleportsrc.SearchPosition {
		raw, _, err := sp.Get(teleportsrc.SearchKey)
		require.NoError(t, err)
		p, err := teleportsrc.ParseSearchPosition(raw)
		require.NoError(t, err)
		return p
	}

	// This pod wrote version 7 last: its db is as new, kept.
	require.NoError(t, x.meta().Set(versionKey, []byte("7")))
	require.NoError(t, x.restore(st, "7", "8"))
	require.Equal(t, mine, search())
	require.True(t, l.Has("holds the newest position"))

	// Another pod wrote since (version 9): its state replaces the db, read
	// again from 30 s before, as it did not stop cleanly.
	require.NoError(t, x.restore(st, "9", "10"))
	require.Equal(t, teleportsrc.SearchPosition{From: 1970}, search())
	require.True(t, l.Has("continuing from the position pod-b handed over"))

	// A clean stop: no replay.
	st.Clean = true
	require.NoError(t, x.restore(st, "11", "12"))
	require.Equal(t, theirs, search())
	v, _, err := x.meta().Get(versionKey)
	require.NoError(t, err)
	require.Equal(t, "12", string(v))
}
