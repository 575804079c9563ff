package flbhost_test

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/flbhost"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadRecordsRoundTrip(t *testing.T) {
	h := flbhost.Start(t, testPlugin(t, "good"), flbhost.Options{})
	_, err := h.InitKV("records", "3", "counter_start", "4294967290", "message", "round trip")
	require.NoError(t, err)
	_, err = h.InitKV("format", "legacy", "counter_start", "5")
	require.NoError(t, err)
	_, err = h.Collect(0, 2)
	require.NoError(t, err)
	_, err = h.Collect(1, 1)
	require.NoError(t, err)
	_, err = h.Quit()
	require.NoError(t, err)

	recs, err := flbhost.ReadRecords(h.RecordsPath())
	require.NoError(t, err)
	require.Len(t, recs, 7)
	for i, r := range recs[:6] {
		c := uint64(4294967290 + i)
		assert.Equal(t, 0, r.Instance)
		assert.Equal(t, i/3, r.Frame, "three records per buffer")
		sec := uint32(1700000000 + c) // the plugin's uint32 seconds wrap
		assert.Equal(t, time.Unix(int64(sec), int64(123456789+c%1000)).UTC(), r.Time, "nanoseconds kept")
		assert.Equal(t, map[string]any{"inst": int64(0)}, r.Metadata)
		assert.Equal(t, map[string]any{
			"message":  "round trip",
			"counter":  c,
			"instance": "teleport.0",
			"neg":      int64(-5),
			"big":      uint64(math.MaxInt64),
			"ubig":     uint64(math.MaxUint64),
			"ratio":    0.25,
			"ok":       true,
			"nested": map[string]any{
				"list": []any{int64(1), "two", nil},
				"n":    uint64(70000),
			},
		}, r.Body)
	}
	legacy := recs[6]
	assert.Equal(t, 1, legacy.Instance)
	assert.Equal(t, 2, legacy.Frame)
	assert.Equal(t, map[string]any{}, legacy.Metadata, "legacy events have empty metadata")
	assert.Equal(t, int64(5), legacy.Body["counter"], "a positive fixint decodes as int64")
	assert.Equal(t, time.Unix(1700000005, 123456794).UTC(), legacy.Time)

	// integers must never come back as floats
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				walk(path+"."+k, e)
			}
		case []any:
			for _, e := range x {
				walk(path+"[]", e)
			}
		case float32, float64:
			assert.Equal(t, ".ratio", path, "only ratio is a float")
		case int64, uint64, string, bool, nil:
		default:
			t.Errorf("%s: unexpected type %T", path, v)
		}
	}
	for _, r := range recs {
		walk("", r.Body)
	}
}

// a minimal msgpack writer for hand-made buffers
type mp []byte

func (m mp) arr(n int) mp  { return append(m, byte(0x90|n)) }
func (m mp) fmap(n int) mp { return append(m, byte(0x80|n)) }
func (m mp) str(s string) mp {
	return append(append(m, byte(0xa0|len(s))), s...)
}
func (m mp) u(v uint8) mp { return append(m, 0xcc, v) }
func (m mp) et(sec, nsec uint32) mp {
	m = append(m, 0xd7, 0x00)
	m = binary.BigEndian.AppendUint32(m, sec)
	return binary.BigEndian.AppendUint32(m, nsec)
}

func TestDecodeEventsIsStrict(t *testing.T) {
	legacy := mp{}.arr(2).et(10, 20).fmap(1).str("k").str("v")
	v2 := mp{}.arr(2).arr(2).et(11, 21).fmap(1).str("m").u(200).fmap(1).str("k").str("v")

	recs, err := flbhost.DecodeEvents(append(append([]byte{}, legacy...), v2...))
	require.NoError(t, err)
	require.Len(t, recs, 2)
	assert.Equal(t, time.Unix(10, 20).UTC(), recs[0].Time)
	assert.Equal(t, map[string]any{"k": "v"}, recs[0].Body)
	assert.Equal(t, map[string]any{"m": uint64(200)}, recs[1].Metadata)

	for name, tc := range map[string]struct {
		buf  []byte
		want string
	}{
		"int timestamp":   {mp{}.arr(2).u(10).fmap(0), "want EventTime"},
		"group marker":    {mp{}.arr(2).arr(2).et(0xffffffff, 0).fmap(0).fmap(0), "group marker"},
		"nsec overflow":   {mp{}.arr(2).et(1, 1e9).fmap(0), "nanoseconds"},
		"ext type 1":      {append(mp{}.arr(2), append([]byte{0xd7, 0x01}, make([]byte, 8)...)...).fmap(0), "ext type 1"},
		"three elements":  {mp{}.arr(3).et(1, 0).fmap(0).fmap(0), "3 elements"},
		"header size":     {mp{}.arr(2).arr(3).et(1, 0).fmap(0).fmap(0).fmap(0), "header has 3"},
		"body not a map":  {mp{}.arr(2).et(1, 0).str("x"), "body is string"},
		"meta not a map":  {mp{}.arr(2).arr(2).et(1, 0).arr(0).fmap(0), "metadata is"},
		"bare map":        {mp{}.fmap(0), "want a 2-element array"},
		"trailing byte":   {append(append([]byte{}, legacy...), 0x01), "event 1 at byte 16"},
		"truncated":       {legacy[:len(legacy)-1], "event 0 at byte 0"},
		"non-string key":  {mp{}.arr(2).et(1, 0).fmap(1).u(1).str("v"), "event 0"},
		"garbage":         {[]byte{0xc1}, "event 0"},
		"second is wrong": {append(append([]byte{}, legacy...), mp{}.arr(1).et(1, 0)...), "event 1"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := flbhost.DecodeEvents(tc.buf)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func frame(inst uint32, payload []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, inst)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

func TestReadRecordsIncompleteTrailingFrame(t *testing.T) {
	ev := mp{}.arr(2).et(1, 2).fmap(1).str("k").str("v")
	good := append(frame(3, ev), frame(4, append(append([]byte{}, ev...), ev...))...)
	dir := t.TempDir()

	for name, tail := range map[string][]byte{
		"short header":  {1, 0, 0},
		"short payload": frame(5, ev)[:8+len(ev)-2],
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			require.NoError(t, os.WriteFile(path, append(append([]byte{}, good...), tail...), 0o644))
			recs, err := flbhost.ReadRecords(path)
			require.Error(t, err)
			assert.True(t, errors.Is(err, flbhost.ErrIncompleteFrame), err.Error())
			require.Len(t, recs, 3, "the complete frames are returned")
			assert.Equal(t, []int{3, 4, 4}, []int{recs[0].Instance, recs[1].Instance, recs[2].Instance})
			assert.Equal(t, []int{0, 1, 1}, []int{recs[0].Frame, recs[1].Frame, recs[2].Frame})
		})
	}

	path := filepath.Join(dir, "bad frame")
	require.NoError(t, os.WriteFile(path, append(append([]byte{}, good...), frame(6, mp{}.fmap(0))...), 0o644))
	recs, err := flbhost.ReadRecords(path)
	require.Error(t, err)
	assert.False(t, errors.Is(err, flbhost.ErrIncompleteFrame), "a malformed frame is not an incomplete one")
	assert.Contains(t, err.Error(), "frame 2 (instance 6")
	assert.Len(t, recs, 3)
}

func TestKillLeavesCompleteFrames(t *testing.T) {
	h := flbhost.Start(t, testPlugin(t, "good"), flbhost.Options{})
	for i := 0; i < 2; i++ {
		_, err := h.InitKV("records", "20")
		require.NoError(t, err)
	}
	_, err := h.DrainAll(500, 30*time.Second, 0)
	require.NoError(t, err)
	st, err := h.Stats()
	require.NoError(t, err)

	// killed between commands: nothing is in flight, every frame is there
	require.NoError(t, h.Kill())
	recs, err := flbhost.ReadRecords(h.RecordsPath())
	require.NoError(t, err)
	assert.Equal(t, st.Records, len(recs))

	// killed in the middle of a drain: both instance threads are writing
	h2 := flbhost.Start(t, testPlugin(t, "good"), flbhost.Options{})
	for i := 0; i < 2; i++ {
		_, err := h2.InitKV("records", "20", "collect_sleep_ms", "1")
		require.NoError(t, err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := h2.DrainAll(1000000, 60*time.Second, 0)
		done <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		fi, err := os.Stat(h2.RecordsPath())
		if err == nil && fi.Size() > 64*1024 {
			break
		}
		require.True(t, time.Now().Before(deadline), "no records written")
		time.Sleep(5 * time.Millisecond)
	}
	require.NoError(t, h2.Kill())
	require.ErrorContains(t, <-done, "host exited without answering")
	recs, err = flbhost.ReadRecords(h2.RecordsPath())
	if err != nil {
		// only possible if SIGKILL interrupted a multi-page write(2)
		require.True(t, errors.Is(err, flbhost.ErrIncompleteFrame), err.Error())
		t.Logf("trailing frame incomplete after SIGKILL: %v", err)
	}
	require.NotEmpty(t, recs)
	assert.Equal(t, 0, len(recs)%20, "only whole buffers of 20 records")
	for _, r := range recs {
		assert.True(t, reflect.DeepEqual(r.Body["message"], "hello"))
	}
}
