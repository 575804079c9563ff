package teleportsrc_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/teleportsrc"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/teleportsrc/memlog"
)

// unreadableIndex fails its first answers, like a db that cannot be read, and
// then knows every event.
type unreadableIndex struct{ fails, asked int }

func (f *unreadableIndex) Seen(int64, string) (bool, error) {
	f.asked++
	if f.fails > 0 {
		f.fails--
		return false, errors.New("no space left on device")
	}
	return true, nil
}

// A re-scan that fails (here the index cannot be read) runs again at the
// next step, not half a settle period later, and sends nothing twice.
func TestSearchRescanThatFailsRunsAgainAtTheNextStep(t *testing.T) {
	log := &memlog.Log{}
	log.Add(memlog.Event("a", "user.login", t0.Add(time.Second)), memlog.Event("b", "user.login", t0.Add(2*time.Second)))
	c := &clock{t0.Add(time.Minute)}
	idx := &unreadableIndex{fails: 1}
	// Resumed after b, as after a restart: the re-scan asks the index about a.
	s := teleportsrc.NewSearch(teleportsrc.SearchConfig{Settle: time.Hour, Index: idx},
		teleportsrc.SearchPosition{From: t0.Add(2 * time.Second).Unix(), Tail: []string{"b"}}, c.now)
	k := &sink{}
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		_, err = s.Step(context.Background(), log, k)
	}
	require.ErrorContains(t, err, "no space left on device")
	asked := idx.asked
	drain(t, s, log, k)
	assert.Greater(t, idx.asked, asked, "asked again")
	assert.Empty(t, k.got(), "nothing sent twice")
}
