package flbhost_test

import (
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/flbhost"
	"github.com/stretchr/testify/require"
)

var (
	pluginMu    sync.Mutex
	pluginCache = map[string]string{}
)

// testPlugin builds tests/host/testdata/<name>.c as a shared object (once
// per test binary; outputs are cached by content) and returns its path.
func testPlugin(t *testing.T, name string) string {
	t.Helper()
	pluginMu.Lock()
	defer pluginMu.Unlock()
	if p, ok := pluginCache[name]; ok {
		return p
	}
	src := filepath.Join(flbhost.HostDir(), "testdata", name+".c")
	out, err := flbhost.CompileC(src, name+".so",
		[]string{"-shared", "-fPIC", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-lpthread"})
	require.NoError(t, err, "building test plugin %s", name)
	pluginCache[name] = out
	return out
}

// logLine is one callback line of the test plugins:
// "[info] cb=<cb> inst=<id> tid=<tid> [arg=<n>] ...".
type logLine struct {
	Level string
	CB    string
	Inst  string
	TID   int
	Arg   string
	KV    map[string]string
	Raw   string
}

func parseLog(t *testing.T, log string) []logLine {
	t.Helper()
	var out []logLine
	for _, raw := range strings.Split(log, "\n") {
		if raw == "" {
			continue
		}
		level, rest, ok := strings.Cut(raw, "] ")
		require.True(t, ok, "log line without level: %q", raw)
		l := logLine{Level: strings.TrimPrefix(level, "["), KV: map[string]string{}, Raw: raw}
		for _, f := range strings.Fields(rest) {
			if k, v, ok := strings.Cut(f, "="); ok {
				l.KV[k] = v
			}
		}
		l.CB = l.KV["cb"]
		l.Inst = l.KV["inst"]
		l.Arg = l.KV["arg"]
		if tid, ok := l.KV["tid"]; ok {
			var err error
			l.TID, err = strconv.Atoi(tid)
			require.NoError(t, err, "tid in %q", raw)
		}
		out = append(out, l)
	}
	return out
}

// callbacks keeps only the lines with a cb= field and renders them as
// "cb(inst,arg)@tid" strings for order assertions.
func callbacks(lines []logLine) []logLine {
	var out []logLine
	for _, l := range lines {
		if l.CB != "" {
			out = append(out, l)
		}
	}
	return out
}

func cmdErr(t *testing.T, err error) *flbhost.CmdError {
	t.Helper()
	require.Error(t, err)
	var ce *flbhost.CmdError
	require.True(t, errors.As(err, &ce), "want *CmdError, got %T: %v", err, err)
	return ce
}
