// Package flbhost runs a Fluent Bit Go-proxy input plugin (.so) inside
// tests/host/host.c, a small C program that reproduces what Fluent Bit 5.1.1
// does to such a plugin (registration, one thread per instance, collect and
// cleanup, pause/resume, shutdown and hot-reload order, msgpack validation),
// and gives Go tests a typed API over the host's line protocol.
//
// A typical test:
//
//	h := flbhost.Start(t, soPath, flbhost.Options{})
//	idx, err := h.Init(map[string]string{"message": "hi"})
//	res, err := h.Drain(idx, 10, 5*time.Second, 10*time.Millisecond)
//	q, err := h.Quit()            // err != nil on invalid buffers or leaks
//	recs, err := flbhost.ReadRecords(h.RecordsPath())
package flbhost

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Options configure Start.
type Options struct {
	// RecordsPath receives one frame per accepted buffer (see ReadRecords).
	// Default: a file in t.TempDir().
	RecordsPath string
	// LogPath receives what the plugin logs through api->log_print.
	// Default: a file in t.TempDir().
	LogPath string
	// Env is appended to the test process environment.
	Env []string
	// LogLevel is the default log level of instances (Fluent Bit's
	// service log_level): error, warn, info (default), debug, trace, off.
	LogLevel string
	// HotReload emulates "service hot_reload on": FLBPluginInputPreRun gets
	// 1 from the start. Without it the host still reloads on request
	// (Fluent Bit would refuse), and PreRun gets 1 only after a reload.
	HotReload bool
	// PauseLastInstance reproduces Fluent Bit's multi-instance pause bug:
	// pausing instance A stops the collector of the last initialised
	// instance instead of A's (FLBPluginInputPause still runs on A's thread).
	PauseLastInstance bool
	// RingBuffer is the interval of the host's ring-buffer collector, which
	// moves handed-over buffers into the records file (Fluent Bit's
	// FLB_DEV_RB_MS, which is set for the plugin too). Default 250 ms, as in
	// Fluent Bit.
	RingBuffer time.Duration
	// RingBufferByHand stops the collector's timer: buffers stay on the
	// ring buffer until CollectRingBuffer.
	RingBufferByHand bool
	// Grace is how long the engine loop (and the ring-buffer collector) keeps
	// running at shutdown and reload between the inputs' pause and their
	// exit. Default 0: Fluent Bit's first grace tick can come at once.
	Grace time.Duration
	// NoCmetrics emulates a Fluent Bit built without metrics: the plugin
	// cannot read the instance's counters.
	NoCmetrics bool
	// CommandTimeout bounds every command (default 2 minutes). On timeout
	// the host is killed: a plugin callback blocked.
	CommandTimeout time.Duration
	// HostPath is a prebuilt host binary. Default: BuildHost(t).
	HostPath string
}

// Registration is the result of FLBPluginPreRegister/FLBPluginRegister at
// start-up.
type Registration struct {
	Name      string
	Type      int    // 1 = input
	Proxy     int    // 11 = Go
	Flags     int    // def->flags as set by the plugin
	EventType int    // def->event_type
	Collect   string // "ctx", "plain" or "none": which collect callback is used
	Cleanup   string // "ctx", "plain" or "free" (no cleanup exported)
	MainTID   int    // OS thread id of the main thread (Register, Unregister)
	PID       int
}

// InitResult describes a started instance.
type InitResult struct {
	Index    int    // instance index used by every other command
	Ret      int    // FLBPluginInit's return value
	Name     string // Fluent Bit instance name, e.g. "teleport.0"
	Alias    string
	TID      int // OS thread the instance's callbacks run on
	PreRun   int // FLBPluginInputPreRun's return value (-1 if not exported)
	Threaded bool
}

// CollectResult is the outcome of one collect command.
type CollectResult struct {
	Calls, Records, Bytes, Buffers int
}

// DrainResult is the outcome of Drain.
type DrainResult struct {
	Records, Calls, Buffers, Bytes int
	Elapsed                        time.Duration
}

// DrainAllResult is the outcome of DrainAll.
type DrainAllResult struct {
	Instances, Records, Calls, Buffers, Bytes int
	Elapsed                                   time.Duration
	PerInstance                               map[int]int // records per instance index
}

// ReloadResult is the outcome of a hot reload.
type ReloadResult struct {
	Instances int
	Elapsed   time.Duration
}

// InstanceStats are the per-instance counters of Stats.
type InstanceStats struct {
	Records int
	State   string // running, paused, buf-paused, exited, failed
}

// Stats are the host's counters.
type Stats struct {
	Records, Buffers, Invalid, Leaks, Misuse int
	Bytes, Calls, Groups, Slow               int
	MaxCollect                               time.Duration
	Instances, Generation                    int
	PerInstance                              map[int]InstanceStats
	Queued                                   int // records on the ring buffers
}

// QuitResult is the outcome of the shutdown sequence.
type QuitResult struct {
	Elapsed                time.Duration
	Invalid, Leaks, Misuse int
	ExitCode               int
}

// CmdError is an "err ..." answer of the host.
type CmdError struct {
	Cmd    string // command name
	Reason string // everything after "err <cmd> "
	Line   string
}

func (e *CmdError) Error() string { return "host: " + e.Line }

// Host is a running host process.
type Host struct {
	t       testing.TB
	opts    Options
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan string
	events  chan string
	stderr  *SyncBuffer
	exited  chan struct{}
	waitErr error

	mu       sync.Mutex  // one command at a time
	finished atomic.Bool // quit answered or killed

	reg    Registration
	regErr error
}

// SyncBuffer is an io.Writer safe for concurrent use, such as a child
// process's standard error read while the process runs.
type SyncBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}

// Start starts the host with the plugin at soPath and waits for the
// registration line. It fails the test if the process cannot start; a
// failed registration is reported by Registration(). A cleanup quits the
// host (or kills it) and fails the test if the host reports invalid
// buffers, leaks or API misuse that the test did not collect with Quit.
func Start(t testing.TB, soPath string, opts Options) *Host {
	t.Helper()
	if opts.HostPath == "" {
		opts.HostPath = BuildHost(t)
	}
	if opts.CommandTimeout == 0 {
		opts.CommandTimeout = 2 * time.Minute
	}
	if opts.RecordsPath == "" || opts.LogPath == "" {
		dir := t.TempDir()
		if opts.RecordsPath == "" {
			opts.RecordsPath = filepath.Join(dir, "records.bin")
		}
		if opts.LogPath == "" {
			opts.LogPath = filepath.Join(dir, "fluent-bit.log")
		}
	}
	abs, err := filepath.Abs(soPath)
	if err != nil {
		t.Fatalf("flbhost: %v", err)
	}
	for _, p := range []*string{&opts.RecordsPath, &opts.LogPath, &opts.HostPath} {
		if *p, err = filepath.Abs(*p); err != nil {
			t.Fatalf("flbhost: %v", err)
		}
	}
	args := []string{abs, "-records", opts.RecordsPath, "-log", opts.LogPath}
	if opts.LogLevel != "" {
		args = append(args, "-log-level", opts.LogLevel)
	}
	if opts.HotReload {
		args = append(args, "-hot-reload")
	}
	if opts.PauseLastInstance {
		args = append(args, "-pause-last-instance")
	}
	if opts.RingBuffer > 0 {
		opts.Env = append(opts.Env, fmt.Sprintf("FLB_DEV_RB_MS=%d", opts.RingBuffer.Milliseconds()))
	}
	if opts.RingBufferByHand {
		args = append(args, "-rb-ms", "0")
	}
	if opts.Grace > 0 {
		args = append(args, "-grace-ms", strconv.FormatInt(opts.Grace.Milliseconds(), 10))
	}
	if opts.NoCmetrics {
		args = append(args, "-no-cmetrics")
	}
	h := &Host{
		t:      t,
		opts:   opts,
		lines:  make(chan string, 16),
		events: make(chan string, 64),
		stderr: &SyncBuffer{},
		exited: make(chan struct{}),
	}
	h.cmd = exec.Command(opts.HostPath, args...)
	h.cmd.Env = append(os.Environ(), opts.Env...)
	h.cmd.Dir = t.TempDir() // a crashing plugin may leave a core file
	h.cmd.Stderr = h.stderr
	h.stdin, err = h.cmd.StdinPipe()
	if err != nil {
		t.Fatalf("flbhost: %v", err)
	}
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("flbhost: %v", err)
	}
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("flbhost: starting %s: %v", opts.HostPath, err)
	}
	go h.readLoop(stdout)
	t.Cleanup(h.cleanup)

	select {
	case line, ok := <-h.lines:
		if !ok {
			h.waitExit(5 * time.Second)
			t.Fatalf("flbhost: host exited before registering: %v\nstderr:\n%s", h.waitErr, h.Stderr())
		}
		h.reg, h.regErr = parseRegistration(line)
	case <-time.After(opts.CommandTimeout):
		h.Kill()
		t.Fatalf("flbhost: no registration line within %v (FLBPluginRegister blocks?)\nstderr:\n%s",
			opts.CommandTimeout, h.Stderr())
	}
	return h
}

func (h *Host) readLoop(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "event ") {
			select {
			case h.events <- line:
			default:
			}
			continue
		}
		h.lines <- line
	}
	close(h.lines)
	h.waitErr = h.cmd.Wait()
	close(h.exited)
}

func (h *Host) waitExit(d time.Duration) bool {
	select {
	case <-h.exited:
		return true
	case <-time.After(d):
		return false
	}
}

func (h *Host) cleanup() {
	if !h.finished.Load() {
		if _, err := h.Quit(); err != nil {
			h.t.Errorf("flbhost: at cleanup: %v", err)
		}
	}
	if h.t.Failed() {
		h.t.Logf("flbhost: host stderr:\n%s", tail(h.Stderr(), 8000))
		h.t.Logf("flbhost: plugin log (%s):\n%s", h.opts.LogPath, tail(h.Log(), 8000))
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "...\n" + s[len(s)-n:]
}

// Registration returns the registration result, or an error if the host
// answered "err register ..." (the plugin would not be usable in Fluent Bit).
func (h *Host) Registration() (Registration, error) { return h.reg, h.regErr }

// RecordsPath is the records file of this host.
func (h *Host) RecordsPath() string { return h.opts.RecordsPath }

// Log returns what the plugin has logged so far.
func (h *Host) Log() string {
	b, _ := os.ReadFile(h.opts.LogPath)
	return string(b)
}

// Stderr returns the host's diagnostics so far (warn slow, misuse, invalid
// buffer dumps, caught signals).
func (h *Host) Stderr() string { return h.stderr.String() }

// Records reads the records file (see ReadRecords).
func (h *Host) Records() ([]Record, error) { return ReadRecords(h.opts.RecordsPath) }

// PID of the host process.
func (h *Host) PID() int { return h.cmd.Process.Pid }

// Events returns the channel of unsolicited "event ..." lines (a reload
// triggered by SIGHUP answers there).
func (h *Host) Events() <-chan string { return h.events }

// Cmd sends one raw command line and returns the answer line. An "err"
// answer is returned together with a *CmdError.
func (h *Host) Cmd(line string) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cmdLocked(line)
}

func (h *Host) cmdLocked(line string) (string, error) {
	if strings.ContainsAny(line, "\r\n") {
		return "", fmt.Errorf("flbhost: command contains a newline: %q", line)
	}
	if h.finished.Load() {
		return "", fmt.Errorf("flbhost: host already stopped, cannot send %q", line)
	}
	name := strings.Fields(line + " x")[0]
	if _, err := io.WriteString(h.stdin, line+"\n"); err != nil {
		h.waitExit(5 * time.Second)
		return "", fmt.Errorf("flbhost: writing %q: %v (host exit: %v)\nstderr:\n%s", line, err, h.waitErr, tail(h.Stderr(), 4000))
	}
	timer := time.NewTimer(h.opts.CommandTimeout)
	defer timer.Stop()
	select {
	case resp, ok := <-h.lines:
		if !ok {
			h.waitExit(5 * time.Second)
			h.finished.Store(true)
			return "", fmt.Errorf("flbhost: host exited without answering %q: %v\nstderr:\n%s", line, h.waitErr, tail(h.Stderr(), 4000))
		}
		f := strings.Fields(resp)
		if len(f) < 2 || f[1] != name {
			return resp, fmt.Errorf("flbhost: unexpected answer %q to %q", resp, line)
		}
		switch f[0] {
		case "ok":
			return resp, nil
		case "err":
			reason := strings.TrimPrefix(resp, "err "+name)
			return resp, &CmdError{Cmd: name, Reason: strings.TrimSpace(reason), Line: resp}
		}
		return resp, fmt.Errorf("flbhost: unexpected answer %q to %q", resp, line)
	case <-timer.C:
		h.Kill()
		return "", fmt.Errorf("flbhost: no answer to %q within %v: a plugin callback blocks; host killed\nstderr:\n%s",
			line, h.opts.CommandTimeout, tail(h.Stderr(), 4000))
	}
}

// reply is a parsed answer: positional tokens after "<ok|err> <cmd>" and
// key=value pairs.
type reply struct {
	pos []string
	kv  map[string]string
}

// splitTokens splits on blanks, honouring double quotes with \" and \\.
func splitTokens(s string) []string {
	var toks []string
	var cur strings.Builder
	in, have := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case in && c == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\'):
			cur.WriteByte(s[i+1])
			i++
		case c == '"':
			in = !in
			have = true
		case !in && (c == ' ' || c == '\t'):
			if have {
				toks = append(toks, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if have {
		toks = append(toks, cur.String())
	}
	return toks
}

func parseReply(line string) reply {
	r := reply{kv: map[string]string{}}
	toks := splitTokens(line)
	if len(toks) >= 2 {
		toks = toks[2:]
	}
	for _, tok := range toks {
		if k, v, ok := strings.Cut(tok, "="); ok && k != "" {
			r.kv[k] = v
		} else {
			r.pos = append(r.pos, tok)
		}
	}
	return r
}

func (r reply) int(k string) int {
	v, _ := strconv.Atoi(r.kv[k])
	return v
}

func (r reply) ms(k string) time.Duration {
	return time.Duration(r.int(k)) * time.Millisecond
}

func parseRegistration(line string) (Registration, error) {
	if !strings.HasPrefix(line, "ok register") {
		if strings.HasPrefix(line, "err register") {
			return Registration{}, &CmdError{Cmd: "register", Reason: strings.TrimSpace(strings.TrimPrefix(line, "err register")), Line: line}
		}
		return Registration{}, fmt.Errorf("flbhost: unexpected first line %q", line)
	}
	r := parseReply(line)
	return Registration{
		Name:      r.kv["name"],
		Type:      r.int("type"),
		Proxy:     r.int("proxy"),
		Flags:     r.int("flags"),
		EventType: r.int("event_type"),
		Collect:   r.kv["collect"],
		Cleanup:   r.kv["cleanup"],
		MainTID:   r.int("main_tid"),
		PID:       r.int("pid"),
	}, nil
}

func quoteValue(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}

// Init creates an instance with the given properties (sent in sorted key
// order), runs FLBPluginInit and FLBPluginInputPreRun on the instance's new
// thread, and returns the instance index.
func (h *Host) Init(props map[string]string) (int, error) {
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	kv := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		kv = append(kv, k, props[k])
	}
	res, err := h.InitKV(kv...)
	return res.Index, err
}

// InitKV is Init with properties in the given order (key, value, key,
// value, ...); with duplicate keys Fluent Bit keeps both and the plugin sees
// the first.
func (h *Host) InitKV(kv ...string) (InitResult, error) {
	if len(kv)%2 != 0 {
		return InitResult{Index: -1}, errors.New("flbhost: InitKV needs key, value pairs")
	}
	var b strings.Builder
	b.WriteString("init")
	for i := 0; i < len(kv); i += 2 {
		k, v := kv[i], kv[i+1]
		if k == "" || strings.ContainsAny(k, " \t\"=\r\n") {
			return InitResult{Index: -1}, fmt.Errorf("flbhost: bad property name %q", k)
		}
		if strings.ContainsAny(v, "\r\n") {
			return InitResult{Index: -1}, fmt.Errorf("flbhost: property %s: value contains a newline", k)
		}
		b.WriteString(" " + k + "=" + quoteValue(v))
	}
	line, err := h.Cmd(b.String())
	r := parseReply(line)
	res := InitResult{
		Index:    -1,
		Ret:      r.int("ret"),
		Name:     r.kv["name"],
		Alias:    r.kv["alias"],
		TID:      r.int("tid"),
		PreRun:   r.int("prerun"),
		Threaded: r.kv["threaded"] == "1",
	}
	if len(r.pos) > 0 {
		if i, err := strconv.Atoi(r.pos[0]); err == nil {
			res.Index = i
		}
	}
	return res, err
}

// Collect calls the collect callback n times back to back on instance idx,
// and answers once what it handed over left the ring buffer.
func (h *Host) Collect(idx, n int) (CollectResult, error) {
	return h.collect(fmt.Sprintf("collect %d %d", idx, n))
}

// CollectNoWait is Collect answering at once, while what it handed over may
// still be on the ring buffer.
func (h *Host) CollectNoWait(idx, n int) (CollectResult, error) {
	return h.collect(fmt.Sprintf("collect %d %d nowait", idx, n))
}

func (h *Host) collect(cmd string) (CollectResult, error) {
	line, err := h.Cmd(cmd)
	r := parseReply(line)
	return CollectResult{Calls: r.int("calls"), Records: r.int("records"), Bytes: r.int("bytes"), Buffers: r.int("buffers")}, err
}

func durMS(d time.Duration) int64 {
	if d < 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// Drain collects on instance idx (sleeping interval between calls) until
// at least records records arrived or timeout passed.
func (h *Host) Drain(idx, records int, timeout, interval time.Duration) (DrainResult, error) {
	line, err := h.Cmd(fmt.Sprintf("drain %d %d %d %d", idx, records, durMS(timeout), durMS(interval)))
	r := parseReply(line)
	return DrainResult{Records: r.int("records"), Calls: r.int("calls"), Buffers: r.int("buffers"), Bytes: r.int("bytes"), Elapsed: r.ms("ms")}, err
}

// DrainAll drains every live instance concurrently, each on its own thread.
func (h *Host) DrainAll(records int, timeout, interval time.Duration) (DrainAllResult, error) {
	line, err := h.Cmd(fmt.Sprintf("drain-all %d %d %d", records, durMS(timeout), durMS(interval)))
	r := parseReply(line)
	res := DrainAllResult{
		Instances: r.int("instances"), Records: r.int("records"), Calls: r.int("calls"),
		Buffers: r.int("buffers"), Bytes: r.int("bytes"), Elapsed: r.ms("ms"),
		PerInstance: map[int]int{},
	}
	for k, v := range r.kv {
		if s, ok := strings.CutPrefix(k, "rec."); ok {
			i, _ := strconv.Atoi(s)
			res.PerInstance[i], _ = strconv.Atoi(v)
		}
	}
	return res, err
}

// Pause runs FLBPluginInputPause on the instance's thread and stops
// collecting from it, like a mem_buf_limit pause. It reports whether the
// plugin was called: Fluent Bit skips instances that are already paused.
func (h *Host) Pause(idx int) (called bool, err error) {
	line, err := h.Cmd(fmt.Sprintf("pause %d", idx))
	return parseReply(line).kv["called"] == "1", err
}

// Resume runs FLBPluginInputResume on the instance's thread and collects
// from it again.
func (h *Host) Resume(idx int) error {
	_, err := h.Cmd(fmt.Sprintf("resume %d", idx))
	return err
}

// Exit runs FLBPluginInputPreExit(0) and FLBPluginExit on the instance's
// thread; the thread ends.
func (h *Host) Exit(idx int) error {
	_, err := h.Cmd(fmt.Sprintf("exit %d", idx))
	return err
}

// Reload performs a hot reload in Fluent Bit's order (see README.md).
// Instances keep their indices.
func (h *Host) Reload() (ReloadResult, error) {
	line, err := h.Cmd("reload")
	r := parseReply(line)
	return ReloadResult{Instances: r.int("instances"), Elapsed: r.ms("ms")}, err
}

// CollectRingBuffer moves every instance's ring buffer into the records
// file now, as Fluent Bit's engine does when an input signals it.
func (h *Host) CollectRingBuffer() error {
	_, err := h.Cmd("rb-collect")
	return err
}

// Stats returns the host counters.
func (h *Host) Stats() (Stats, error) {
	line, err := h.Cmd("stats")
	if err != nil {
		return Stats{}, err
	}
	r := parseReply(line)
	s := Stats{
		Records: r.int("records"), Buffers: r.int("buffers"), Invalid: r.int("invalid"),
		Leaks: r.int("leaks"), Misuse: r.int("misuse"), Bytes: r.int("bytes"), Calls: r.int("calls"),
		Groups: r.int("groups"), Slow: r.int("slow"),
		MaxCollect: time.Duration(r.int("max_collect_us")) * time.Microsecond,
		Instances:  r.int("instances"), Generation: r.int("generation"),
		PerInstance: map[int]InstanceStats{}, Queued: r.int("queued"),
	}
	for k, v := range r.kv {
		if idx, ok := strings.CutPrefix(k, "rec."); ok {
			i, _ := strconv.Atoi(idx)
			st := s.PerInstance[i]
			st.Records, _ = strconv.Atoi(v)
			s.PerInstance[i] = st
		}
		if idx, ok := strings.CutPrefix(k, "state."); ok {
			i, _ := strconv.Atoi(idx)
			st := s.PerInstance[i]
			st.State = v
			s.PerInstance[i] = st
		}
	}
	return s, nil
}

// Quit runs Fluent Bit's shutdown sequence and waits for the host to exit.
// It returns an error if the shutdown did not complete or the exit code is
// not 0 (invalid buffers, leaks or API misuse were seen: exit code 1;
// registration failed or start-up was aborted: 255). The QuitResult is
// filled in either case.
func (h *Host) Quit() (QuitResult, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.finished.Load() {
		return QuitResult{ExitCode: -1}, errors.New("flbhost: host already stopped")
	}
	line, err := h.cmdLocked("quit")
	h.finished.Store(true)
	if err != nil {
		if _, ok := err.(*CmdError); !ok {
			h.Kill()
			return QuitResult{ExitCode: -1}, err
		}
	}
	return h.finishQuit(line)
}

func (h *Host) finishQuit(line string) (QuitResult, error) {
	r := parseReply(line)
	res := QuitResult{Elapsed: r.ms("ms"), Invalid: r.int("invalid"), Leaks: r.int("leaks"), Misuse: r.int("misuse"), ExitCode: -1}
	if !h.waitExit(h.opts.CommandTimeout) {
		h.Kill()
		return res, fmt.Errorf("flbhost: host did not exit after %q", line)
	}
	res.ExitCode = exitCode(h.waitErr)
	if res.ExitCode != 0 {
		return res, fmt.Errorf("flbhost: host exit code %d (%s)\nstderr:\n%s", res.ExitCode, line, tail(h.Stderr(), 4000))
	}
	return res, nil
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return -1
}

// Wait waits for the "ok quit" line after a SIGTERM/SIGINT (see Signal) and
// for the process to exit; it returns like Quit.
func (h *Host) Wait(timeout time.Duration) (QuitResult, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-h.lines:
			if !ok {
				h.finished.Store(true)
				h.waitExit(5 * time.Second)
				code := exitCode(h.waitErr)
				return QuitResult{ExitCode: code}, fmt.Errorf("flbhost: host exited without a quit line: %v\nstderr:\n%s", h.waitErr, tail(h.Stderr(), 4000))
			}
			if strings.HasPrefix(line, "ok quit") {
				h.finished.Store(true)
				return h.finishQuit(line)
			}
		case <-timer.C:
			return QuitResult{ExitCode: -1}, fmt.Errorf("flbhost: host did not quit within %v", timeout)
		}
	}
}

// Kill sends SIGKILL and waits for the process to be gone. It may be
// called while another goroutine waits for a command's answer; that
// command then fails.
func (h *Host) Kill() error {
	h.finished.Store(true)
	select {
	case <-h.exited:
		return nil
	default:
	}
	err := h.cmd.Process.Kill()
	h.stdin.Close()
	if !h.waitExit(30 * time.Second) {
		return errors.New("flbhost: host did not die after SIGKILL")
	}
	return err
}

// Signal sends a signal to the host: SIGTERM/SIGINT start the shutdown
// (then call Wait), SIGHUP a reload (answered on Events()), SIGCONT is
// Fluent Bit's dump signal. SIGHUP and SIGCONT also re-install the host's
// SIGSEGV handler over the Go runtime's, as Fluent Bit does.
func (h *Host) Signal(sig os.Signal) error {
	return h.cmd.Process.Signal(sig)
}

// Exited reports whether the host process has exited.
func (h *Host) Exited() bool {
	select {
	case <-h.exited:
		return true
	default:
		return false
	}
}

// ExitCode returns the exit code once the process is gone (-1 before;
// 128+signal if it died from a signal).
func (h *Host) ExitCode() int {
	if !h.Exited() {
		return -1
	}
	return exitCode(h.waitErr)
}
