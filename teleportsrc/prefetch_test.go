package teleportsrc_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/teleportsrc"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/teleportsrc/memlog"
)

func span(q memlog.Query) string {
	return q.From.Format(time.DateTime) + " - " + q.To.Format(time.DateTime)
}

// Windows end at UTC midnight, whatever second the export starts at.
func TestSearchWindowsEndAtMidnight(t *testing.T) {
	start := t0.Add(13*time.Hour + 7*time.Second)
	m := &memlog.Log{}
	for i := 0; i < 5; i++ {
		m.Add(memlog.Event(fmt.Sprint("e", i), "x", start.Add(time.Duration(i)*time.Second)))
	}
	clk := &clock{t0.Add(3*24*time.Hour + time.Hour)}
	s := teleportsrc.NewSearch(cfg(), teleportsrc.SearchPosition{From: start.Unix()}, clk.now)
	k := &sink{}
	drain(t, s, m, k)
	assert.Equal(t, ids("e", 5), k.ids)
	var got []string
	for _, q := range m.Queries() {
		got = append(got, span(q))
	}
	assert.ElementsMatch(t, []string{ // the next window is read ahead: in any order
		"2026-05-01 13:00:07 - 2026-05-02 00:00:00",
		"2026-05-02 00:00:00 - 2026-05-03 00:00:00",
		"2026-05-03 00:00:00 - 2026-05-04 00:00:00",
		"2026-05-04 00:00:00 - 2026-05-04 01:00:00", // the open window, up to now
	}, got)
}

// While a page is handed over, the next page of its window and the first
// page of the next closed window are asked already; the reader then uses
// them without asking again, hands over every event once, in order, and
// reads nothing ahead into the open window.
func TestSearchReadsAheadAcrossWindows(t *testing.T) {
	// 13 events 6 hours apart: 5 on the first day (one on its end), 4 on
	// the next two, and one in the open window.
	m := &memlog.Log{}
	for i := 0; i < 13; i++ {
		m.Add(memlog.Event(fmt.Sprint("e", i), "x", t0.Add(time.Duration(i)*6*time.Hour)))
	}
	clk := &clock{t0.Add(3*24*time.Hour + time.Hour)}
	s := teleportsrc.NewSearch(teleportsrc.SearchConfig{Window: 24 * time.Hour, PageSize: 3, Concurrency: 2}, teleportsrc.SearchPosition{From: t0.Unix()}, clk.now)
	k := &sink{}
	idle, err := s.Step(t.Context(), m, k)
	require.NoError(t, err)
	require.False(t, idle)
	require.Eventually(t, func() bool { return len(m.Queries()) == 3 }, 10*time.Second, time.Millisecond,
		"after the first page: the second page and the next day's first, before the reader asks")
	var asked []string
	for _, q := range m.Queries() {
		asked = append(asked, fmt.Sprintf("%s key %q", span(q), q.Key))
	}
	assert.ElementsMatch(t, []string{
		`2026-05-01 00:00:00 - 2026-05-02 00:00:00 key ""`,
		`2026-05-01 00:00:00 - 2026-05-02 00:00:00 key "e2"`,
		`2026-05-02 00:00:00 - 2026-05-03 00:00:00 key ""`,
	}, asked)

	drain(t, s, m, k)
	assert.Equal(t, ids("e", 13), k.ids)
	count := map[string]int{}
	for _, q := range m.Queries() {
		count[fmt.Sprintf("%s key %q", span(q), q.Key)]++
	}
	for q, n := range count {
		assert.Equal(t, 1, n, "query %s asked once", q)
	}
	assert.Len(t, count, 7, "two pages of each closed day, one of the open window: %v", count)
	assert.Zero(t, teleportsrc.PendingReads(s), "nothing is read ahead into the open window")
}
