package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/testenv"
)

func input(c cluster, alias, tag, db string, start time.Time, extra ...string) string {
	s := fmt.Sprintf(`[INPUT]
    Name          teleport
    Alias         %s
    Tag           %s
    addr          %s
    identity_file %s
    db            %s
    start_time    %s
    poll_interval 200ms
`, alias, tag, c.srv.Addr(), c.identity, db, start.UTC().Format(time.RFC3339))
	for i := 0; i < len(extra); i += 2 {
		s += fmt.Sprintf("    %s %s\n", extra[i], extra[i+1])
	}
	return s
}

// Two instances (two clusters) in one fluent-bit loaded from a classic
// plugins file, a file output, and a SIGTERM restart: every event once.
func TestTwoInstancesAndRestartWithRealFluentBit(t *testing.T) {
	bin := fluentBit(t)
	so := testenv.PluginSO(t)
	dir := t.TempDir()
	a, b := newCluster(t, "alpha.example.com"), newCluster(t, "beta.example.com")
	start := time.Now().Add(-24 * time.Hour).Truncate(time.Second)
	idsA := testenv.Seed(a.srv, 1, 3000, start.Add(time.Second), 20*time.Second)
	idsB := testenv.Seed(b.srv, 2, 2000, start.Add(time.Second), 30*time.Second)
	db := filepath.Join(dir, "db")
	out := filepath.Join(dir, "out")
	require.NoError(t, os.MkdirAll(out, 0o755))

	plugins, mainConf := classicConfig(so, out,
		input(a, "alpha", "teleport.alpha", db, start, "batch_max_records", "700"),
		input(b, "beta", "teleport.beta", db, start))
	pluginsPath := write(t, filepath.Join(dir, "plugins.conf"), plugins)
	conf := write(t, filepath.Join(dir, "fluent-bit.conf"), fmt.Sprintf(mainConf, pluginsPath))

	p := startFluentBit(t, bin, "-c", conf)
	waitLines(t, p, filepath.Join(out, "teleport.alpha"), 1500, time.Minute)
	took := p.stop(t, 10*time.Second)
	assert.Less(t, took, 5*time.Second, "SIGTERM shutdown")
	require.Contains(t, p.output(), "[input:teleport:alpha]")
	require.Contains(t, p.output(), "[input:teleport:beta]")

	// More events while stopped, then restart on the same db.
	idsA = append(idsA, testenv.Seed(a.srv, 3, 50, time.Now(), time.Millisecond)...)
	p = startFluentBit(t, bin, "-c", conf)
	waitLines(t, p, filepath.Join(out, "teleport.alpha"), len(idsA), time.Minute)
	waitLines(t, p, filepath.Join(out, "teleport.beta"), len(idsB), time.Minute)
	p.stop(t, 10*time.Second)

	requireExactlyOnce(t, idsA, uidsIn(t, filepath.Join(out, "teleport.alpha")))
	requireExactlyOnce(t, idsB, uidsIn(t, filepath.Join(out, "teleport.beta")))
	require.Contains(t, p.output(), "resuming from the position saved in db")
}

// The YAML plugins list and the command line (-e) load the plugin too.
func TestYAMLAndCommandLineLoading(t *testing.T) {
	bin := fluentBit(t)
	so := testenv.PluginSO(t)
	dir := t.TempDir()
	c := newCluster(t, "yaml.example.com")
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	ids := testenv.Seed(c.srv, 4, 100, start.Add(time.Second), time.Second)

	out := filepath.Join(dir, "out")
	require.NoError(t, os.MkdirAll(out, 0o755))
	yaml := fmt.Sprintf(`service:
  flush: 1
  grace: 1
plugins:
  - %s
pipeline:
  inputs:
    - name: teleport
      tag: teleport.yaml
      addr: %s
      identity_file: %s
      db: %s
      start_time: %s
  outputs:
    - name: file
      match: teleport.*
      path: %s
      format: plain
`, so, c.srv.Addr(), c.identity, filepath.Join(dir, "db-yaml"), start.Format(time.RFC3339), out)
	p := startFluentBit(t, bin, "-c", write(t, filepath.Join(dir, "fluent-bit.yaml"), yaml))
	waitLines(t, p, filepath.Join(out, "teleport.yaml"), len(ids), time.Minute)
	p.stop(t, 10*time.Second)
	requireExactlyOnce(t, ids, uidsIn(t, filepath.Join(out, "teleport.yaml")))

	p = startFluentBit(t, bin, "-e", so, "-i", "teleport", "-t", "teleport.cli",
		"-p", "addr="+c.srv.Addr(), "-p", "identity_file="+c.identity, "-p", "db="+filepath.Join(dir, "db-cli"),
		"-p", "start_time="+start.Format(time.RFC3339), "-o", "stdout", "-p", "format=json_lines", "-m", "*", "-f", "1")
	waitOutput(t, p, `"uid":`, len(ids), time.Minute)
	p.stop(t, 10*time.Second)
	for _, id := range ids {
		require.Equal(t, 1, strings.Count(p.output(), `"uid":"`+id+`"`), id)
	}
}

// A bad setting stops fluent-bit at start-up with the key named.
func TestBadSettingFailsStartup(t *testing.T) {
	bin := fluentBit(t)
	so := testenv.PluginSO(t)
	dir := t.TempDir()
	c := newCluster(t, "bad.example.com")
	p := startFluentBit(t, bin, "-e", so, "-i", "teleport", "-p", "addr="+c.srv.Addr(), "-p", "identity_file="+c.identity,
		"-p", "db="+filepath.Join(dir, "db"), "-p", "page_size=99999", "-p", "windw_size=1h", "-o", "null")
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("fluent-bit kept running with a bad setting")
	}
	assert.NotEqual(t, 0, p.cmd.ProcessState.ExitCode())
	assert.Contains(t, p.output(), `setting "page_size" = "99999": out of range; accepted: a whole number from 1 to 10000`)
	assert.Contains(t, p.output(), `unknown setting "windw_size" (did you mean "window_size"?)`)
}

// Hot reload (SIGHUP) keeps exporting without loss or repeat, within a second.
func TestHotReloadWithRealFluentBit(t *testing.T) {
	bin := fluentBit(t)
	so := testenv.PluginSO(t)
	dir := t.TempDir()
	c := newCluster(t, "reload.example.com")
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	ids := testenv.Seed(c.srv, 5, 500, start.Add(time.Second), time.Second)
	out := filepath.Join(dir, "out")
	require.NoError(t, os.MkdirAll(out, 0o755))
	plugins, mainConf := classicConfig(so, out, input(c, "reload", "teleport.reload", filepath.Join(dir, "db"), start))
	mainConf = strings.Replace(mainConf, "[SERVICE]\n", "[SERVICE]\n    Hot_Reload   On\n", 1)
	conf := write(t, filepath.Join(dir, "fluent-bit.conf"), fmt.Sprintf(mainConf, write(t, filepath.Join(dir, "plugins.conf"), plugins)))

	p := startFluentBit(t, bin, "-c", conf)
	waitLines(t, p, filepath.Join(out, "teleport.reload"), len(ids), time.Minute)
	for i := 1; i <= 2; i++ {
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
		// Each Init logs its settings: one more line per reload.
		waitOutput(t, p, "[input:teleport:reload] settings:", i+1, 30*time.Second)
		more := testenv.Seed(c.srv, int64(10+i), 20, time.Now(), time.Millisecond)
		ids = append(ids, more...)
		waitLines(t, p, filepath.Join(out, "teleport.reload"), len(ids), time.Minute)
	}
	p.stop(t, 10*time.Second)
	requireExactlyOnce(t, ids, uidsIn(t, filepath.Join(out, "teleport.reload")))
}
