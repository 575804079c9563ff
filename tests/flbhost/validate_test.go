package flbhost_test

import (
	"encoding/binary"
	"os"
	"testing"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/flbhost"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawFrames splits a records file without decoding the events.
func rawFrames(t *testing.T, path string) (instances []int, sizes []int) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	for off := 0; off < len(data); {
		require.GreaterOrEqual(t, len(data)-off, 8)
		n := int(binary.LittleEndian.Uint32(data[off+4:]))
		instances = append(instances, int(binary.LittleEndian.Uint32(data[off:])))
		sizes = append(sizes, n)
		off += 8 + n
		require.LessOrEqual(t, off, len(data))
	}
	return instances, sizes
}

// Every shape Fluent Bit's log-event decoder accepts is accepted, every
// shape it rejects (or silently drops) is reported with its offset.
func TestValidationFollowsTheLogEventDecoder(t *testing.T) {
	valid := []struct {
		mode    string
		records int
	}{
		{"v2", 1}, {"legacy", 1}, {"int_ts", 1}, {"zero_ts", 1}, {"signed_pos_ts", 1},
		{"float_ts", 1}, {"mixed", 4}, {"group", 1}, {"deep64", 1},
	}
	invalid := []struct {
		mode   string
		offset string
		why    string
	}{
		{"deep65", "0", "containers nested deeper than 64"},
		{"three_elem", "0", "wrong root size: 3 elements"},
		{"non_map_body", "0", "wrong body type: str"},
		{"truncated", "0", "insufficient data"},
		{"truncated_second", "18", "event #2: insufficient data"},
		{"bare_map", "0", "wrong root type: map"},
		{"neg_int_ts", "0", "wrong timestamp type: negative int"},
		{"float32_ts", "0", "wrong timestamp type: float32"},
		{"str_ts", "0", "wrong timestamp type: str"},
		{"ext1_ts", "0", "ext type 1 size 8"},
		{"ext_size4_ts", "0", "ext type 0 size 4"},
		{"nsec_overflow", "0", "nanoseconds 1000000000"},
		{"neg_float_ts", "0", "negative timestamp -5: Fluent Bit silently skips this record"},
		{"header3", "0", "wrong header size: 3 elements"},
		{"meta_not_map", "0", "wrong metadata type: array"},
		{"garbage", "0", "bad msgpack byte 0xc1"},
		{"valid_then_invalid", "18", "event #2: wrong root size: 3"},
		{"trailing_byte", "18", "event #2: wrong root type: positive int"},
		{"bad_group_marker", "0", "group marker seconds 0xffffffff with nanoseconds 7"},
	}

	h := flbhost.Start(t, testPlugin(t, "bad"), flbhost.Options{})
	var validIdx []int
	total := 0
	for _, v := range valid {
		idx, err := h.Init(map[string]string{"mode": v.mode})
		require.NoError(t, err)
		c, err := h.Collect(idx, 1)
		require.NoError(t, err, v.mode)
		assert.Equal(t, v.records, c.Records, v.mode)
		validIdx = append(validIdx, idx)
		total += v.records
	}
	for _, v := range invalid {
		idx, err := h.Init(map[string]string{"mode": v.mode})
		require.NoError(t, err)
		_, err = h.Collect(idx, 1)
		ce := cmdErr(t, err)
		assert.Contains(t, ce.Reason, "invalid msgpack at offset "+v.offset+": ", v.mode)
		assert.Contains(t, ce.Reason, v.why, v.mode)
	}
	st, err := h.Stats()
	require.NoError(t, err)
	assert.Equal(t, len(invalid), st.Invalid)
	assert.Equal(t, total, st.Records)
	assert.Equal(t, 2, st.Groups, "group start and end are accepted but are not records")
	assert.Equal(t, 0, st.Leaks)

	q, err := h.Quit()
	require.Error(t, err, "invalid buffers make the run fail")
	assert.Equal(t, 1, q.ExitCode)
	assert.Equal(t, len(invalid), q.Invalid)

	insts, _ := rawFrames(t, h.RecordsPath())
	assert.Equal(t, validIdx, insts, "only accepted buffers are recorded")
}

func TestLeakAndFreeWithoutCleanupCallback(t *testing.T) {
	t.Run("free", func(t *testing.T) {
		h := flbhost.Start(t, testPlugin(t, "leak"), flbhost.Options{})
		reg, err := h.Registration()
		require.NoError(t, err)
		assert.Equal(t, "plain", reg.Collect)
		assert.Equal(t, "free", reg.Cleanup, "no cleanup exported: Fluent Bit calls free()")
		_, err = h.Init(map[string]string{"mode": "free"})
		require.NoError(t, err)
		c, err := h.Collect(0, 3)
		require.NoError(t, err)
		assert.Equal(t, 3, c.Records)
		_, err = h.Quit()
		require.NoError(t, err)
		recs, err := h.Records()
		require.NoError(t, err)
		require.Len(t, recs, 3)
		assert.Equal(t, "free", recs[2].Body["mode"])
		assert.Equal(t, 2, recs[2].Frame)
	})
	for mode, want := range map[string]string{
		"leak":          "leak: callback returned -1 with 22 bytes (Fluent Bit drops the data and never calls cleanup)",
		"empty_nonnull": "leak: callback returned a non-NULL buffer with size 0 (Fluent Bit treats it as no data and never frees it)",
	} {
		t.Run(mode, func(t *testing.T) {
			h := flbhost.Start(t, testPlugin(t, "leak"), flbhost.Options{})
			_, err := h.Init(map[string]string{"mode": mode})
			require.NoError(t, err)
			_, err = h.Collect(0, 1)
			assert.Equal(t, "0 "+want, cmdErr(t, err).Reason)
			st, err := h.Stats()
			require.NoError(t, err)
			assert.Equal(t, 1, st.Leaks)
			assert.Equal(t, 0, st.Records, "the data is dropped")
			q, err := h.Quit()
			require.Error(t, err)
			assert.Equal(t, 1, q.ExitCode)
			assert.Equal(t, 1, q.Leaks)
			recs, err := h.Records()
			require.NoError(t, err)
			assert.Empty(t, recs)
		})
	}
	t.Run("nothing", func(t *testing.T) {
		h := flbhost.Start(t, testPlugin(t, "leak"), flbhost.Options{})
		_, err := h.Init(map[string]string{"mode": "nothing"})
		require.NoError(t, err)
		c, err := h.Collect(0, 2)
		require.NoError(t, err)
		assert.Equal(t, flbhost.CollectResult{Calls: 2}, c)
	})
	t.Run("null_data", func(t *testing.T) {
		h := flbhost.Start(t, testPlugin(t, "leak"), flbhost.Options{})
		_, err := h.Init(map[string]string{"mode": "null_data"})
		require.NoError(t, err)
		_, err = h.Collect(0, 1)
		assert.Contains(t, cmdErr(t, err).Reason, "invalid msgpack at offset 0: NULL buffer with size 10")
		q, err := h.Quit()
		require.Error(t, err)
		assert.Equal(t, 1, q.Invalid)
	})
}
