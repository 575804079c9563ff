package teleportsrc_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/teleportsrc"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/teleportsrc/memlog"
)

// Each reader fills what its config leaves zero; the tests below run them
// with empty configs, which were unsafe before.

// A zero Window never moved the search past its start.
func TestSearchWithAnEmptyConfigReads(t *testing.T) {
	log := &memlog.Log{}
	log.Add(memlog.Event("a", "user.login", t0.Add(time.Second)), memlog.Event("b", "user.login", t0.Add(30*time.Hour)))
	c := &clock{t0.Add(48 * time.Hour)}
	s := teleportsrc.NewSearch(teleportsrc.SearchConfig{}, teleportsrc.SearchPosition{From: t0.Unix()}, c.now)
	k := &sink{}
	drain(t, s, log, k)
	assert.Equal(t, []string{"a", "b"}, k.got())
}

// A zero Poll listed chunks in a busy loop.
func TestBulkWithAnEmptyConfigPollsAtMostEvery15s(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	m, ids := bulkLog(1, 10, now)
	b := teleportsrc.NewBulk(teleportsrc.BulkConfig{Start: now.Truncate(24 * time.Hour).Add(-24 * time.Hour)}, teleportsrc.BulkState{}, func() time.Time { return now })
	k := &sink{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- b.Run(ctx, m, k) }()
	require.Eventually(t, b.CaughtUp, 5*time.Second, time.Millisecond)
	listed := m.Calls("ExportChunks")
	assert.Never(t, func() bool { return m.Calls("ExportChunks") != listed }, 200*time.Millisecond, 10*time.Millisecond,
		"no new listing before bulkPollMin")
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	assert.ElementsMatch(t, ids, k.got())
}

// A zero GiveUpAfter gave up every recording not uploaded yet at once, and
// a zero RetryMin asked again in a busy loop.
func TestSessionsWithAnEmptyConfigWaitForTheUpload(t *testing.T) {
	log := &memlog.Log{}
	l := &lines{}
	m := teleportsrc.NewSessions(teleportsrc.SessionConfig{Logf: l.logf}, nil, time.Now)
	runSessions(t, m, log, &sink{})
	m.Watch(upload(t, "s1", time.Now()))
	require.Eventually(t, func() bool { return l.has("the recording of session s1 is not uploaded yet") }, 5*time.Second, time.Millisecond)
	assert.Never(t, func() bool { return log.Calls("StreamSession") > 1 }, 200*time.Millisecond, 10*time.Millisecond,
		"asked again only after sessionRetryMin")
	assert.Zero(t, m.StatsNow().GivenUp)
	assert.True(t, l.has("until 48h0m0s after its upload"), l.l)
}
