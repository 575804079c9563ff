package integration

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/flbhost"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/teleportfake"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/testenv"
)

// The README's switch-over from the Event Handler: it stopped after sending
// the event in its `id` file, reading a window that began at `window_time`.
// With start_time = window_time and start_after_uid = id, the plugin sends
// exactly the events after that one, though five share each second and
// one of that second came before it.
func TestSwitchOverFromEventHandler(t *testing.T) {
	e := newEnv(t, teleportfake.Config{})
	first := time.Now().Add(-6 * time.Hour).Truncate(time.Second)
	ids := testenv.Seed(e.srv, 401, 400, first, 200*time.Millisecond)
	const sent = 237 // the Event Handler's last event is ids[sent-1], mid-second
	windowTime := first.Add(-3 * time.Hour)

	h := host(t, flbhost.Options{})
	idx := initOK(t, h, e.props(windowTime, "start_after_uid", ids[sent-1]))
	_, err := h.Drain(idx, len(ids)-sent, 30*time.Second, 0)
	require.NoError(t, err, h.Log())
	logHas(t, h, 5*time.Second, "start_after_uid: starting right after event "+ids[sent-1])
	assert.Equal(t, ids[sent:], uids(collectFor(t, h, idx, time.Second)), "exactly the events after the Event Handler's last one")
}
