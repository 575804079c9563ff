// Package e2e runs the plugin inside a real fluent-bit. It needs
// FLUENT_BIT=/path/to/fluent-bit (Fluent Bit 4.1 or newer) and says plainly
// that it skipped when that is not set.
package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/teleportfake"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/testenv"
)

// fluentBit returns the binary or skips the test, saying why.
func fluentBit(t testing.TB) string {
	t.Helper()
	p := os.Getenv("FLUENT_BIT")
	if p == "" {
		t.Skip("SKIPPED: FLUENT_BIT is not set; set FLUENT_BIT=/path/to/fluent-bit to run the end-to-end tests with a real Fluent Bit")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("FLUENT_BIT=%s: %v", p, err)
	}
	return p
}

// proc is a running fluent-bit.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	done chan struct{}
}

func startFluentBit(t testing.TB, bin string, args ...string) *proc {
	t.Helper()
	return launch(t, nil, bin, args...)
}

// launch starts fluent-bit. Its log (standard error) is kept in the proc,
// with its standard output too, unless stdout is given to take that apart.
func launch(t testing.TB, stdout io.Writer, bin string, args ...string) *proc {
	t.Helper()
	return launchEnv(t, nil, stdout, bin, args...)
}

// launchEnv is launch with variables added to the environment.
func launchEnv(t testing.TB, env []string, stdout io.Writer, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	var log io.Reader
	var err error
	if stdout != nil {
		p.cmd.Stdout = stdout
		log, err = p.cmd.StderrPipe()
	} else {
		log, err = p.cmd.StdoutPipe()
		p.cmd.Stderr = p.cmd.Stdout
	}
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	go func() {
		defer close(p.done)
		s := bufio.NewScanner(log)
		s.Buffer(make([]byte, 1<<20), 64<<20)
		for s.Scan() {
			p.mu.Lock()
			p.out.WriteString(s.Text() + "\n")
			p.mu.Unlock()
		}
		_ = p.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("fluent-bit output:\n%s", p.output())
		}
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t *testing.T, timeout time.Duration) time.Duration {
	t.Helper()
	begin := time.Now()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("fluent-bit did not stop within %s after SIGTERM", timeout)
	}
	require.Equal(t, 0, p.cmd.ProcessState.ExitCode(), p.output())
	return time.Since(begin)
}

// uidsIn reads the uid of every JSON line of the files matching glob. A
// last line without its newline is still being written and is left for the
// next read.
func uidsIn(t *testing.T, glob string) []string {
	t.Helper()
	files, err := filepath.Glob(glob)
	require.NoError(t, err)
	var out []string
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		complete := string(raw[:strings.LastIndexByte(string(raw), '\n')+1])
		for _, line := range strings.Split(complete, "\n") {
			if strings.TrimSpace(line) == "" {
				continue
			}
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &m), "line %q", line)
			uid, _ := m["uid"].(string)
			out = append(out, uid)
		}
	}
	return out
}

// cluster is a Teleport double with its identity.
type cluster struct {
	srv      *teleportfake.Server
	identity string
}

func newCluster(t *testing.T, name string) cluster {
	srv := testenv.Fake(t, teleportfake.Config{ClusterName: name})
	return cluster{srv: srv, identity: testenv.Identity(t, srv, teleportfake.IdentityOptions{})}
}

func write(t *testing.T, path, content string) string {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func countEach(ids []string) map[string]int {
	m := map[string]int{}
	for _, id := range ids {
		m[id]++
	}
	return m
}

func requireExactlyOnce(t *testing.T, want, got []string) {
	t.Helper()
	counts := countEach(got)
	for _, id := range want {
		require.Equal(t, 1, counts[id], "event %s delivered %d times", id, counts[id])
	}
	require.Len(t, got, len(want), "nothing but the seeded events")
}

// waitUntil polls cond every 50 ms until it holds, failing after timeout
// or as soon as fluent-bit exits; what says how far it got.
func waitUntil(t testing.TB, p *proc, timeout time.Duration, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what())
		}
		select {
		case <-p.done:
			if cond() {
				return
			}
			t.Fatalf("fluent-bit exited early: %s\n%s", what(), p.output())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitLines waits until the files matching glob hold n events.
func waitLines(t *testing.T, p *proc, glob string, n int, timeout time.Duration) {
	t.Helper()
	waitUntil(t, p, timeout,
		func() string { return fmt.Sprintf("%d of %d events in %s", len(uidsIn(t, glob)), n, glob) },
		func() bool { return len(uidsIn(t, glob)) >= n })
}

// waitOutput waits until fluent-bit's output holds fragment n times.
func waitOutput(t *testing.T, p *proc, fragment string, n int, timeout time.Duration) {
	t.Helper()
	waitUntil(t, p, timeout,
		func() string {
			return fmt.Sprintf("%d of %d %q in the output", strings.Count(p.output(), fragment), n, fragment)
		},
		func() bool { return strings.Count(p.output(), fragment) >= n })
}

func classicConfig(so, outDir string, inputs ...string) (plugins, main string) {
	plugins = fmt.Sprintf("[PLUGINS]\n    Path %s\n", so)
	main = fmt.Sprintf(`[SERVICE]
    Flush        1
    Grace        2
    Log_Level    info
    Plugins_File %%s

%s
[OUTPUT]
    Name   file
    Match  teleport.*
    Path   %s
    Format plain
`, strings.Join(inputs, "\n"), outDir)
	return plugins, main
}
