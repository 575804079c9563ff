// Package realauth runs a real Teleport Auth Service for tests and
// benchmarks: tests/realteleport builds realauthd, Teleport 13.3.8's Auth
// Service in a process of its own (a separate Go module: Teleport's main
// module must never be linked into the plugin), with the file audit log that
// self-hosted clusters use. The first caller builds it with `go build` into
// build/realauthd. With Go's build cache cold that takes 5-7 minutes on 2
// shared cores (about 430 s of CPU) and 2.3 GB of RAM. With the module cache
// cold it also downloads 180 modules (283 MB) from the Go module proxy. An
// up-to-date binary costs under a second, and a relink after a change about
// 10 s.
package realauth

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gravitational/teleport/api/client"
	"github.com/stretchr/testify/require"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/flbhost"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/testenv"
)

// Options say what realauthd seeds: Events audit events spread evenly over
// Days 24h days ending now, and Sessions recorded sessions.
type Options struct {
	Events, Days, Sessions int
}

// Server is a running realauthd.
type Server struct {
	Addr, Identity, Cluster string
	Sessions                []string
	First                   time.Time // the earliest seeded event
	DataDir                 string

	manifestPath string
	db           string
	cmd          *exec.Cmd
	stdin        io.WriteCloser
	lines        chan string
	stderr       *flbhost.SyncBuffer
	exited       chan struct{}
	mu           sync.Mutex
}

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// binary builds tests/realteleport once per test process into
// build/realauthd at the repository root. `go build` leaves an up-to-date
// binary alone, so later runs cost about a second.
func binary(t testing.TB) string {
	t.Helper()
	binaryOnce.Do(func() {
		root, err := testenv.RepoRoot()
		if err != nil {
			binaryErr = err
			return
		}
		goBin, err := exec.LookPath("go")
		if err != nil {
			binaryErr = fmt.Errorf("the real-Teleport tests build tests/realteleport and need the go command in PATH: %w", err)
			return
		}
		binaryPath = filepath.Join(root, "build", "realauthd")
		// Its own module and its committed go.sum, whatever GOFLAGS says;
		// no VCS stamp (the checkout may not be a usable git repository).
		cmd := exec.Command(goBin, "build", "-mod=readonly", "-buildvcs=false", "-o", binaryPath, ".")
		cmd.Dir = filepath.Join(root, "tests", "realteleport")
		cmd.Env = append(os.Environ(), "GOWORK=off")
		begin := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			binaryErr = fmt.Errorf("building realauthd (cd tests/realteleport && go build) failed after %v: %v\n%s\n"+
				"A cold build needs the Go module proxy (180 modules, 283 MB), about 2.3 GB of RAM and 5-7 minutes on 2 cores.",
				time.Since(begin).Round(time.Second), err, out)
			return
		}
		t.Logf("built %s in %v", binaryPath, time.Since(begin).Round(100*time.Millisecond))
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

// Start starts a realauthd, stopped when the test ends. Seeding is part of
// its start-up: allow about a minute per 100,000 events.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	bin := binary(t)
	dir := t.TempDir()
	rt := &Server{
		manifestPath: filepath.Join(dir, "manifest.tsv"),
		DataDir:      filepath.Join(dir, "data"),
		db:           filepath.Join(dir, "db"),
		lines:        make(chan string, 16),
		stderr:       &flbhost.SyncBuffer{},
		exited:       make(chan struct{}),
	}
	rt.cmd = exec.Command(bin,
		"-identity", filepath.Join(dir, "identity"), "-manifest", rt.manifestPath, "-data", rt.DataDir,
		"-events", strconv.Itoa(o.Events), "-days", strconv.Itoa(o.Days), "-sessions", strconv.Itoa(o.Sessions))
	rt.cmd.Stderr = rt.stderr
	var err error
	rt.stdin, err = rt.cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := rt.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, rt.cmd.Start(), "starting %s", bin)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			rt.lines <- sc.Text()
		}
		close(rt.lines)
	}()
	go func() {
		rt.cmd.Wait()
		close(rt.exited)
	}()
	t.Cleanup(func() { rt.stop(t) })

	line := rt.next(t, 60*time.Second+time.Duration(o.Events)*time.Millisecond)
	fields, ok := parseReady(line)
	require.True(t, ok, "realauthd's first line is not a ready line: %q\nstderr:\n%s", line, rt.stderr.String())
	rt.Addr, rt.Identity, rt.Cluster = fields["addr"], fields["identity"], fields["cluster"]
	if s := fields["sessions"]; s != "" {
		rt.Sessions = strings.Split(s, ",")
	}
	require.Len(t, rt.Sessions, o.Sessions, line)
	require.Equal(t, strconv.Itoa(o.Events), fields["events"], line)
	if o.Events > 0 {
		rt.First, err = time.Parse(time.RFC3339, fields["first"])
		require.NoError(t, err, line)
	}
	require.True(t, strings.HasPrefix(rt.Addr, "127.0.0.1:"), "loopback only: %s", rt.Addr)
	return rt
}

// Client is a bare Teleport API client with the exporter's identity,
// closed when the test ends.
func (rt *Server) Client(t testing.TB) *client.Client {
	t.Helper()
	clt, err := client.New(context.Background(), client.Config{
		Addrs:       []string{rt.Addr},
		Credentials: []client.Credentials{client.LoadIdentityFile(rt.Identity)},
		DialTimeout: 10 * time.Second,
	})
	require.NoError(t, err)
	t.Cleanup(func() { clt.Close() })
	return clt
}

// PID is realauthd's process id (to measure its CPU time).
func (rt *Server) PID() int { return rt.cmd.Process.Pid }

func parseReady(line string) (map[string]string, bool) {
	rest, ok := strings.CutPrefix(line, "ready ")
	if !ok {
		return nil, false
	}
	m := map[string]string{}
	for _, f := range strings.Fields(rest) {
		k, v, _ := strings.Cut(f, "=")
		m[k] = v
	}
	for _, k := range []string{"addr", "identity", "cluster", "events", "sessions", "first"} {
		if _, ok := m[k]; !ok {
			return nil, false
		}
	}
	return m, true
}

// next returns realauthd's next stdout line.
func (rt *Server) next(t testing.TB, timeout time.Duration) string {
	t.Helper()
	select {
	case line, ok := <-rt.lines:
		if !ok {
			<-rt.exited
			t.Fatalf("realauthd exited (%v); stderr:\n%s", rt.cmd.ProcessState, rt.stderr.String())
		}
		return line
	case <-time.After(timeout):
		t.Fatalf("no answer from realauthd within %v; stderr:\n%s", timeout, rt.stderr.String())
	}
	return ""
}

// Emit makes the server write n events timed now and returns them.
func (rt *Server) Emit(t testing.TB, n int) Manifest {
	t.Helper()
	rt.mu.Lock()
	defer rt.mu.Unlock()
	before := len(rt.Manifest(t).List)
	last := rt.emit(t, n)
	all := rt.Manifest(t)
	require.Len(t, all.List, before+n)
	out := NewManifest()
	for _, e := range all.List[before:] {
		out.Add(e)
	}
	require.Equal(t, last, out.List[n-1].UID)
	return out
}

// EmitFast is Emit without reading the manifest, for a steady stream: it
// returns the last event's uid.
func (rt *Server) EmitFast(t testing.TB, n int) string {
	t.Helper()
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.emit(t, n)
}

func (rt *Server) emit(t testing.TB, n int) string {
	_, err := fmt.Fprintf(rt.stdin, "emit %d\n", n)
	require.NoError(t, err)
	line := rt.next(t, 30*time.Second)
	prefix := fmt.Sprintf("ok emitted %d last=", n)
	require.True(t, strings.HasPrefix(line, prefix), "answer to emit: %q", line)
	return strings.TrimPrefix(line, prefix)
}

// stop sends quit and waits for a clean exit (kills after 10 seconds).
func (rt *Server) stop(t testing.TB) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	_, _ = io.WriteString(rt.stdin, "quit\n")
	select {
	case <-rt.exited:
		if code := rt.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("realauthd exited with %d; stderr:\n%s", code, rt.stderr.String())
		}
	case <-time.After(10 * time.Second):
		_ = rt.cmd.Process.Kill()
		<-rt.exited
		t.Errorf("realauthd did not quit within 10s; killed")
	}
}

// Props are the plugin settings reading rt from a minute before its first
// event into a fresh db, followed by kv (key, value, ...).
func (rt *Server) Props(kv ...string) map[string]string {
	p := map[string]string{
		"addr": rt.Addr, "identity_file": rt.Identity, "db": rt.db,
		"start_time":    rt.Start().Format(time.RFC3339),
		"poll_interval": "100ms", "dial_timeout": "10s",
	}
	for i := 0; i+1 < len(kv); i += 2 {
		p[kv[i]] = kv[i+1]
	}
	return p
}

// Start is a minute before the first seeded event: where a reader of every
// event begins.
func (rt *Server) Start() time.Time { return rt.First.Add(-time.Minute).UTC().Truncate(time.Second) }

// Event is one event realauthd wrote.
type Event struct {
	UID, Type, SID string
	Time           time.Time
}

// Manifest lists the events realauthd emitted (seeded, recorded sessions'
// audit events, emitted on command), in the order it wrote them.
type Manifest struct {
	List  []Event
	ByUID map[string]Event
}

// NewManifest is an empty manifest.
func NewManifest() Manifest { return Manifest{ByUID: map[string]Event{}} }

// Add appends an event.
func (m *Manifest) Add(e Event) {
	m.List = append(m.List, e)
	m.ByUID[e.UID] = e
}

// SessionEnd is the time of the session.end of session sid.
func (m Manifest) SessionEnd(t testing.TB, sid string) time.Time {
	t.Helper()
	for _, e := range m.List {
		if e.SID == sid && e.Type == "session.end" {
			return e.Time
		}
	}
	t.Fatalf("realauthd wrote no session.end for session %s", sid)
	return time.Time{}
}

// Manifest reads the events realauthd has written so far.
func (rt *Server) Manifest(t testing.TB) Manifest {
	t.Helper()
	b, err := os.ReadFile(rt.manifestPath)
	require.NoError(t, err)
	m := NewManifest()
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		require.Len(t, f, 4, "manifest line %q", line)
		ts, err := time.Parse(time.RFC3339Nano, f[2])
		require.NoError(t, err)
		_, dup := m.ByUID[f[0]]
		require.False(t, dup, "realauthd wrote uid %s twice", f[0])
		m.Add(Event{UID: f[0], Type: f[1], Time: ts, SID: f[3]})
	}
	return m
}
