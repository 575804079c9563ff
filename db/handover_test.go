package db

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A successor gets the positions and the index of the recent hours, and
// Replace makes them the whole space.
func TestHandoverScansAndReplace(t *testing.T) {
	s, err := Open(t.TempDir(), testLog{t})
	require.NoError(t, err)
	defer s.Close()
	sp := s.Space("c/i")
	now := time.Date(2026, 12, 4, 12, 30, 0, 0, time.UTC)
	require.NoError(t, sp.Commit([]Mark{mark{"search", "p"}}, []Seen{
		{Second: now.Add(-3 * time.Hour).Unix(), UID: "old"},
		{Second: now.Add(-26 * time.Hour).Unix(), UID: "older"},
		{Second: now.Unix(), UID: "new"},
	}))
	var positions, index []string
	require.NoError(t, sp.ScanPositions(func(k string, _ []byte) error { positions = append(positions, k); return nil }))
	require.Equal(t, []string{"search"}, positions)
	require.NoError(t, sp.ScanRecentIndex(now.Add(-time.Hour), func(k string, v []byte) error {
		index = append(index, k)
		require.Equal(t, HashUID("new"), UIDHash(v))
		return nil
	}))
	require.Len(t, index, 1, "only the hours since")

	require.NoError(t, sp.Replace([]Pair{{Key: "search", Val: []byte("q")}}))
	v, ok, err := sp.Get("search")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "q", string(v))
	n := 0
	require.NoError(t, sp.ScanSeen(func(int64, UIDHash) { n++ }))
	require.Zero(t, n, "Replace leaves nothing else")
}
