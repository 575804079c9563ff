package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/teleportfake"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/testenv"
)

// The documented recipe (conf/examples/sessions.conf) in a real fluent-bit:
// audit events on stdout, each session recording in its own file.
func TestSessionRoutingRecipe(t *testing.T) {
	bin := fluentBit(t)
	so := testenv.PluginSO(t)
	root, err := testenv.RepoRoot()
	require.NoError(t, err)
	dir := t.TempDir()
	c := newCluster(t, "sessions.example.com")
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	audit := testenv.Seed(c.srv, 60, 20, start.Add(time.Second), time.Second)
	gen := teleportfake.NewGenerator(61)
	var sessions = map[string][]string{}
	for i, sid := range []string{"sess-a", "sess-b"} {
		rec, upload := gen.Session(sid, start.Add(time.Duration(i+1)*time.Minute), 25)
		c.srv.AddSession(sid, rec)
		c.srv.Append(upload)
		audit = append(audit, upload.GetID())
		for _, ev := range rec {
			if ev.GetType() != "print" {
				sessions[sid] = append(sessions[sid], ev.GetID())
			}
		}
	}

	raw, err := os.ReadFile(filepath.Join(root, "conf", "examples", "sessions.conf"))
	require.NoError(t, err)
	out := filepath.Join(dir, "sessions")
	require.NoError(t, os.MkdirAll(out, 0o755))
	conf := strings.NewReplacer(
		"plugins.conf", write(t, filepath.Join(dir, "plugins.conf"), "[PLUGINS]\n    Path "+so+"\n"),
		"teleport.example.com:443", c.srv.Addr(),
		"/var/lib/teleport/fluent-bit/identity", c.identity,
		"/var/lib/fluent-bit/teleport", filepath.Join(dir, "db"),
		"/var/lib/fluent-bit/sessions", out,
		"    sessions      on\n", "    sessions      on\n    start_time    "+start.Format(time.RFC3339)+"\n",
	).Replace(string(raw))
	p := startFluentBit(t, bin, "-c", write(t, filepath.Join(dir, "fluent-bit.conf"), conf))

	for sid, ids := range sessions {
		waitLines(t, p, filepath.Join(out, "teleport.session."+sid), len(ids), time.Minute)
	}
	waitOutput(t, p, `"uid":`, len(audit), time.Minute)
	p.stop(t, 10*time.Second)

	for sid, ids := range sessions {
		assert.Equal(t, ids, uidsIn(t, filepath.Join(out, "teleport.session."+sid)), "session %s in its own file, in order", sid)
	}
	for _, id := range audit {
		assert.Equal(t, 1, strings.Count(p.output(), `"uid":"`+id+`"`), id)
	}
	assert.NotContains(t, p.output(), `"teleport_stream":"session"`, "no recording event on the audit output")
}
