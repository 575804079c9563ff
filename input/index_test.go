package input

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/db"
)

func testSpace(t *testing.T) *db.Space {
	s, err := db.Open(t.TempDir(), &lines{})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s.Space("mem/teleport.0")
}

// A failed read is returned, and the next question reads again: it is
// never remembered as an hour without entries (which would send
// duplicates).
func TestIndexReadErrorsAreReturnedNotKept(t *testing.T) {
	mem := db.NewMemory()
	sp := db.New(mem).Space("mem/teleport.0")
	sec := t0.Add(90 * time.Minute).Unix()
	require.NoError(t, sp.Commit(nil, []db.Seen{{Second: sec, UID: "a"}}))
	idx := newIndex(sp)
	mem.FailReads("/seen/", errDiskFull)
	_, err := idx.Seen(sec, "a")
	require.ErrorIs(t, err, errDiskFull)
	mem.FailReads("", nil)
	seen, err := idx.Seen(sec, "a")
	require.NoError(t, err)
	assert.True(t, seen)
}

// The index keeps at most its budget of hashes in memory, dropping the
// hours used longest ago, and answers about an hour larger than the whole
// budget from the db each time.
func TestIndexMemoryIsBounded(t *testing.T) {
	sp := testSpace(t)
	hour := func(h int) int64 { return t0.Add(time.Duration(h) * time.Hour).Unix() }
	var entries []db.Seen
	for h := 0; h < 4; h++ {
		for n := 0; n < 6; n++ {
			entries = append(entries, db.Seen{Second: hour(h) + int64(n), UID: fmt.Sprintf("h%d-%d", h, n)})
		}
	}
	for n := 0; n < 25; n++ {
		entries = append(entries, db.Seen{Second: hour(9), UID: fmt.Sprintf("big-%d", n)})
	}
	require.NoError(t, sp.Commit(nil, entries))

	idx := newIndex(sp)
	idx.budget = 12 // two hours of six
	for round := 0; round < 2; round++ {
		for h := 0; h < 4; h++ {
			for n := 0; n < 6; n++ {
				seen, err := idx.Seen(hour(h)+30, fmt.Sprintf("h%d-%d", h, n))
				require.NoError(t, err)
				assert.True(t, seen)
			}
			seen, err := idx.Seen(hour(h), "never")
			require.NoError(t, err)
			assert.False(t, seen)
			assert.LessOrEqual(t, idx.held, idx.budget)
		}
	}
	assert.Len(t, idx.hours, 2, "the two hours used last")
	seen, err := idx.Seen(hour(9)+100, "big-24")
	require.NoError(t, err)
	assert.True(t, seen, "an hour over the budget is read on demand")
	assert.NotContains(t, idx.hours, hour(9))
	assert.LessOrEqual(t, idx.held, idx.budget)
}
