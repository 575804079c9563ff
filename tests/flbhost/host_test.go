package flbhost_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/flbhost"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHostCompilesWithoutWarnings(t *testing.T) {
	flags := append(append([]string{}, flbhost.HostCFlags...), "-Werror", "-ldl", "-lpthread")
	bin, err := flbhost.CompileC(flbhost.HostSource(), "host-werror", flags)
	require.NoError(t, err)
	fi, err := os.Stat(bin)
	require.NoError(t, err)
	assert.NotZero(t, fi.Mode().Perm()&0o100, "%s is executable", bin)
}

func TestRegister(t *testing.T) {
	h := flbhost.Start(t, testPlugin(t, "good"), flbhost.Options{})
	reg, err := h.Registration()
	require.NoError(t, err)
	assert.Equal(t, flbhost.Registration{
		Name: "teleport", Type: 1, Proxy: 11, Flags: 0, EventType: 0,
		Collect: "ctx", Cleanup: "ctx", MainTID: reg.PID, PID: h.PID(),
	}, reg)

	// the test plugin gets its api (to log) in FLBPluginInit
	r, err := h.InitKV()
	require.NoError(t, err)
	_, err = h.Quit()
	require.NoError(t, err)
	var got []string
	for _, l := range callbacks(parseLog(t, h.Log())) {
		got = append(got, l.CB)
		switch l.CB {
		case "pre_register", "register", "unregister":
			assert.Equal(t, reg.MainTID, l.TID, "%s runs on the main thread", l.CB)
		default:
			assert.Equal(t, r.TID, l.TID, "%s runs on the instance thread", l.CB)
		}
	}
	assert.Equal(t, []string{"pre_register", "register", "init", "pre_run", "pause", "pause", "pre_exit", "exit", "unregister"}, got)
	assert.Contains(t, h.Log(), "cb=pre_register inst=- tid="+fmt.Sprint(reg.MainTID)+" arg=0", "FLBPluginPreRegister(hot_reloading=0)")
}

func TestRegisterFailures(t *testing.T) {
	for mode, want := range map[string]string{
		"pre_fail":    "FLBPluginPreRegister(0) returned -1",
		"fail":        "FLBPluginRegister returned -1",
		"wrong_proxy": "def->proxy=0",
		"output":      "def->type=2",
		"no_name":     "def->name is NULL",
	} {
		t.Run(mode, func(t *testing.T) {
			h := flbhost.Start(t, testPlugin(t, "bad"), flbhost.Options{Env: []string{"BAD_REGISTER=" + mode}})
			_, err := h.Registration()
			assert.Contains(t, cmdErr(t, err).Reason, want)
			_, err = h.Init(nil)
			assert.Equal(t, "plugin not registered", cmdErr(t, err).Reason)
			q, err := h.Quit()
			require.Error(t, err)
			assert.Equal(t, 255, q.ExitCode, "Fluent Bit would not start")
		})
	}
}

func TestTwoInstancesHaveTheirOwnContextAndProperties(t *testing.T) {
	h := flbhost.Start(t, testPlugin(t, "good"), flbhost.Options{})
	reg, err := h.Registration()
	require.NoError(t, err)

	r0, err := h.InitKV("message", "first instance", "records", "2")
	require.NoError(t, err)
	r1, err := h.InitKV("message", "second", "alias", "second-alias", "records", "3")
	require.NoError(t, err)
	assert.Equal(t, 0, r0.Index)
	assert.Equal(t, 1, r1.Index)
	assert.Equal(t, "teleport.0", r0.Name)
	assert.Equal(t, "teleport.1", r1.Name)
	assert.Equal(t, "second-alias", r1.Alias)
	assert.True(t, r0.Threaded && r1.Threaded)
	assert.NotEqual(t, r0.TID, r1.TID, "one thread per instance")
	assert.NotEqual(t, reg.MainTID, r0.TID)
	assert.NotEqual(t, reg.MainTID, r1.TID)
	assert.Equal(t, 0, r0.PreRun, "FLBPluginInputPreRun's return value")

	c0, err := h.Collect(0, 2)
	require.NoError(t, err)
	insts, sizes := rawFrames(t, h.RecordsPath())
	require.Equal(t, []int{0, 0}, insts, "one frame per buffer")
	assert.Equal(t, flbhost.CollectResult{Calls: 2, Records: 4, Bytes: sizes[0] + sizes[1], Buffers: 2}, c0, "bytes: the sizes of the buffers handed over")
	c1, err := h.Collect(1, 1)
	require.NoError(t, err)
	assert.Equal(t, 3, c1.Records)

	recs, err := h.Records()
	require.NoError(t, err)
	require.Len(t, recs, 7)
	var counters [2][]any
	for _, r := range recs {
		switch r.Instance {
		case 0:
			assert.Equal(t, "first instance", r.Body["message"])
			assert.Equal(t, "teleport.0", r.Body["instance"])
		case 1:
			assert.Equal(t, "second", r.Body["message"])
			assert.Equal(t, "second-alias", r.Body["instance"], "flb_input_name returns the alias")
		default:
			t.Fatalf("unexpected instance %d", r.Instance)
		}
		assert.EqualValues(t, r.Instance, r.Metadata["inst"], "the context handed to collect is the instance's own")
		counters[r.Instance] = append(counters[r.Instance], r.Body["counter"])
	}
	assert.Equal(t, []any{int64(0), int64(1), int64(2), int64(3)}, counters[0], "each instance has its own counter")
	assert.Equal(t, []any{int64(0), int64(1), int64(2)}, counters[1])

	lines := parseLog(t, h.Log())
	var inits []logLine
	for _, l := range lines {
		assert.NotContains(t, l.Raw, "error=", "the plugin saw a wrong context or thread")
		if l.CB == "init" {
			inits = append(inits, l)
		}
	}
	require.Len(t, inits, 2)
	assert.Equal(t, r0.TID, inits[0].TID, "FLBPluginInit runs on the instance thread")
	assert.Equal(t, r1.TID, inits[1].TID)
	assert.Contains(t, inits[0].Raw, `message="first instance"`)
	assert.Contains(t, inits[1].Raw, `message="second"`)
	for _, l := range inits {
		assert.Equal(t, "0", l.KV["coll_fd"], "context is calloc'd")
		assert.Equal(t, "(nil)", l.KV["ctx_before"], "remote_context starts NULL")
	}
	assert.Equal(t, inits[0].KV["plugin"], inits[1].KV["plugin"], "one shared flbgo_input_plugin struct")

	st, err := h.Stats()
	require.NoError(t, err)
	assert.Equal(t, 7, st.Records)
	assert.Equal(t, 3, st.Buffers)
	assert.Equal(t, map[int]flbhost.InstanceStats{0: {Records: 4, State: "running"}, 1: {Records: 3, State: "running"}}, st.PerInstance)
	_, err = h.Quit()
	require.NoError(t, err)
}

func TestContextAtOffsetZeroIsOverwritten(t *testing.T) {
	h := flbhost.Start(t, testPlugin(t, "good"), flbhost.Options{})
	_, err := h.InitKV("ctx_at_offset0", "on")
	require.NoError(t, err)
	c, err := h.Collect(0, 1)
	require.NoError(t, err)
	assert.Equal(t, 0, c.Records, "coll_fd written after init clobbers a context stored at offset 0")
	assert.Contains(t, h.Log(), "cb=collect inst=? tid=")
	assert.Contains(t, h.Log(), "error=NULL-context")
}

func TestPauseResume(t *testing.T) {
	h := flbhost.Start(t, testPlugin(t, "good"), flbhost.Options{})
	r, err := h.InitKV("trace", "on")
	require.NoError(t, err)

	called, err := h.Pause(0)
	require.NoError(t, err)
	assert.True(t, called)
	_, err = h.Collect(0, 1)
	assert.Equal(t, "0 paused", cmdErr(t, err).Reason, "no collect while paused")
	_, err = h.Drain(0, 1, time.Second, 0)
	assert.Equal(t, "0 paused", cmdErr(t, err).Reason)
	called, err = h.Pause(0)
	require.NoError(t, err)
	assert.False(t, called, "flb_input_pause skips an instance that is already paused")
	st, err := h.Stats()
	require.NoError(t, err)
	assert.Equal(t, "paused", st.PerInstance[0].State)

	require.NoError(t, h.Resume(0))
	assert.Equal(t, "0 not paused", cmdErr(t, h.Resume(0)).Reason)
	c, err := h.Collect(0, 1)
	require.NoError(t, err)
	assert.Equal(t, 1, c.Records)

	// paused at shutdown: Fluent Bit does not call Pause again
	_, err = h.Pause(0)
	require.NoError(t, err)
	_, err = h.Quit()
	require.NoError(t, err)

	var got []string
	for _, l := range callbacks(parseLog(t, h.Log())) {
		if l.CB == "pre_register" || l.CB == "register" || l.CB == "unregister" {
			continue
		}
		assert.Equal(t, r.TID, l.TID, "%s on the instance thread", l.CB)
		got = append(got, l.CB)
	}
	assert.Equal(t, []string{"init", "pre_run", "pause", "resume", "collect", "cleanup", "pause", "pre_exit", "exit"}, got)
}

func TestPauseLastInstanceBug(t *testing.T) {
	h := flbhost.Start(t, testPlugin(t, "good"), flbhost.Options{PauseLastInstance: true})
	r0, err := h.InitKV("trace", "on")
	require.NoError(t, err)
	_, err = h.Init(nil)
	require.NoError(t, err)

	_, err = h.Pause(0)
	require.NoError(t, err)
	_, err = h.Collect(1, 1)
	assert.Equal(t, "1 paused", cmdErr(t, err).Reason, "Fluent Bit pauses the last initialised instance's collector")
	c, err := h.Collect(0, 1)
	require.NoError(t, err, "instance 0 keeps being collected")
	assert.Equal(t, 0, c.Records, "the plugin honours its pause and returns no data")
	assert.Contains(t, h.Log(), fmt.Sprintf("cb=pause inst=0 tid=%d", r0.TID))
	assert.Contains(t, h.Log(), "cb=collect inst=0 tid=")

	require.NoError(t, h.Resume(0))
	c, err = h.Collect(1, 1)
	require.NoError(t, err)
	assert.Equal(t, 1, c.Records)
	c, err = h.Collect(0, 1)
	require.NoError(t, err)
	assert.Equal(t, 1, c.Records)
}

func TestExitAndReinit(t *testing.T) {
	h := flbhost.Start(t, testPlugin(t, "good"), flbhost.Options{})
	r0, err := h.InitKV("message", "a")
	require.NoError(t, err)
	_, err = h.Collect(0, 1)
	require.NoError(t, err)
	require.NoError(t, h.Exit(0))

	_, err = h.Collect(0, 1)
	assert.Equal(t, "0 exited", cmdErr(t, err).Reason)
	assert.Equal(t, "0 exited", cmdErr(t, h.Exit(0)).Reason)

	r1, err := h.InitKV("message", "b")
	require.NoError(t, err)
	assert.Equal(t, 1, r1.Index)
	assert.Equal(t, "teleport.0", r1.Name, "Fluent Bit's instance_id() reuses the free id")
	assert.NotEqual(t, r0.TID, r1.TID, "a new thread")
	c, err := h.Collect(1, 1)
	require.NoError(t, err)
	assert.Equal(t, 1, c.Records)

	st, err := h.Stats()
	require.NoError(t, err)
	assert.Equal(t, "exited", st.PerInstance[0].State)
	assert.Equal(t, "running", st.PerInstance[1].State)
	_, err = h.Quit()
	require.NoError(t, err)

	recs, err := h.Records()
	require.NoError(t, err)
	require.Len(t, recs, 2)
	assert.Equal(t, "a", recs[0].Body["message"])
	assert.Equal(t, "b", recs[1].Body["message"])
	assert.Equal(t, 1, recs[1].Instance)

	var got []string
	for _, l := range callbacks(parseLog(t, h.Log())) {
		who := map[int]string{r0.TID: "t0", r1.TID: "t1"}[l.TID]
		if who == "" {
			who = "main"
		}
		got = append(got, l.CB+"@"+who+"/"+l.Arg)
	}
	assert.Equal(t, []string{
		"pre_register@main/0", "register@main/",
		"init@t0/", "pre_run@t0/0",
		"pre_exit@t0/0", "exit@t0/",
		"init@t1/", "pre_run@t1/0",
		"pause@t1/", "pause@t1/", "pre_exit@t1/0", "exit@t1/",
		"unregister@main/",
	}, got)
}

// order renders callback lines as cb@who/arg with thread names.
func order(lines []logLine, who map[int]string) []string {
	var out []string
	for _, l := range lines {
		w, ok := who[l.TID]
		if !ok {
			w = fmt.Sprintf("tid%d", l.TID)
		}
		out = append(out, l.CB+"@"+w+"/"+l.Arg)
	}
	return out
}

func TestShutdownOrder(t *testing.T) {
	h := flbhost.Start(t, testPlugin(t, "good"), flbhost.Options{})
	reg, _ := h.Registration()
	who := map[int]string{reg.MainTID: "main"}
	for i := 0; i < 3; i++ {
		r, err := h.Init(nil)
		require.NoError(t, err)
		_ = r
	}
	for _, l := range parseLog(t, h.Log()) {
		if l.CB == "init" {
			who[l.TID] = "i" + l.Inst
		}
	}
	require.Len(t, who, 4)
	before := len(callbacks(parseLog(t, h.Log())))
	q, err := h.Quit()
	require.NoError(t, err)
	assert.Equal(t, 0, q.ExitCode)
	assert.Equal(t, []string{
		"pause@i0/", "pause@i1/", "pause@i2/",
		"pause@i0/", "pause@i1/", "pause@i2/",
		"pre_exit@i2/0", "exit@i2/", "pre_exit@i1/0", "exit@i1/", "pre_exit@i0/0", "exit@i0/",
		"unregister@main/",
	}, order(callbacks(parseLog(t, h.Log()))[before:], who))
}

func TestReloadOrder(t *testing.T) {
	h := flbhost.Start(t, testPlugin(t, "good"), flbhost.Options{})
	reg, _ := h.Registration()
	r0, err := h.InitKV("message", "zero")
	require.NoError(t, err)
	r1, err := h.InitKV("message", "one", "alias", "uno")
	require.NoError(t, err)
	_, err = h.Collect(0, 1)
	require.NoError(t, err)
	_, err = h.Collect(1, 1)
	require.NoError(t, err)

	oldLines := parseLog(t, h.Log())
	before := len(callbacks(oldLines))
	rr, err := h.Reload()
	require.NoError(t, err)
	assert.Equal(t, 2, rr.Instances)

	after := callbacks(parseLog(t, h.Log()))[before:]
	who := map[int]string{reg.MainTID: "main", r0.TID: "old0", r1.TID: "old1"}
	var newInits []logLine
	for _, l := range after {
		if l.CB == "init" {
			newInits = append(newInits, l)
		}
	}
	require.Len(t, newInits, 2)
	who[newInits[0].TID] = "new0"
	who[newInits[1].TID] = "new1"
	require.Len(t, who, 5, "reloaded instances run on new threads")
	assert.Equal(t, []string{
		"pre_register@main/1", "register@main/",
		"pause@old0/", "pause@old1/", "pause@old0/", "pause@old1/",
		"pre_exit@old1/1", "exit@old1/", "pre_exit@old0/1", "exit@old0/",
		"unregister@main/",
		"init@new0/", "init@new1/",
		"pre_run@new0/1", "pre_run@new1/1",
	}, order(after, who))
	assert.Contains(t, newInits[0].Raw, `name=teleport.0 message="zero"`, "same properties after reload")
	assert.Contains(t, newInits[1].Raw, `name=uno message="one"`)
	var oldPlugin string
	for _, l := range oldLines {
		if l.CB == "init" {
			oldPlugin = l.KV["plugin"]
		}
	}
	assert.NotEqual(t, oldPlugin, newInits[0].KV["plugin"], "a new registration has a new plugin struct")

	c, err := h.Collect(0, 1)
	require.NoError(t, err)
	assert.Equal(t, 1, c.Records)
	c, err = h.Collect(1, 1)
	require.NoError(t, err)
	assert.Equal(t, 1, c.Records)
	st, err := h.Stats()
	require.NoError(t, err)
	assert.Equal(t, 1, st.Generation)

	before = len(callbacks(parseLog(t, h.Log())))
	_, err = h.Quit()
	require.NoError(t, err)
	assert.Equal(t, []string{
		"pause@new0/", "pause@new1/", "pause@new0/", "pause@new1/",
		"pre_exit@new1/0", "exit@new1/", "pre_exit@new0/0", "exit@new0/",
		"unregister@main/",
	}, order(callbacks(parseLog(t, h.Log()))[before:], who))

	recs, err := h.Records()
	require.NoError(t, err)
	require.Len(t, recs, 4)
	assert.Equal(t, "zero", recs[2].Body["message"])
	assert.Equal(t, "uno", recs[3].Body["instance"])
}

func TestHotReloadOptionPreRunArgument(t *testing.T) {
	h := flbhost.Start(t, testPlugin(t, "good"), flbhost.Options{HotReload: true})
	_, err := h.Init(nil)
	require.NoError(t, err)
	assert.Contains(t, h.Log(), "cb=pre_run inst=0 tid=")
	for _, l := range parseLog(t, h.Log()) {
		if l.CB == "pre_run" {
			assert.Equal(t, "1", l.Arg, "PreRun gets config->enable_hot_reload")
		}
	}
}

func TestSignals(t *testing.T) {
	h := flbhost.Start(t, testPlugin(t, "good"), flbhost.Options{})
	_, err := h.Init(nil)
	require.NoError(t, err)

	require.NoError(t, h.Signal(syscall.SIGHUP))
	select {
	case ev := <-h.Events():
		assert.True(t, strings.HasPrefix(ev, "event reload instances=1 "), ev)
	case <-time.After(30 * time.Second):
		t.Fatal("no reload event after SIGHUP")
	}
	assert.Contains(t, h.Stderr(), "[engine] caught signal (SIGHUP)")
	c, err := h.Collect(0, 1)
	require.NoError(t, err)
	assert.Equal(t, 1, c.Records)

	before := len(callbacks(parseLog(t, h.Log())))
	require.NoError(t, h.Signal(syscall.SIGTERM))
	q, err := h.Wait(30 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, 0, q.ExitCode)
	var got []string
	for _, l := range callbacks(parseLog(t, h.Log()))[before:] {
		got = append(got, l.CB)
	}
	assert.Equal(t, []string{"pause", "pause", "pre_exit", "exit", "unregister"}, got)
}

func TestQuitOnStdinEOFAndSIGINT(t *testing.T) {
	bin := flbhost.BuildHost(t)
	so := testPlugin(t, "good")

	cmd := exec.Command(bin, so)
	cmd.Stdin = strings.NewReader("init\ncollect 0\n")
	out, err := cmd.Output()
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Len(t, lines, 4)
	assert.True(t, strings.HasPrefix(lines[3], "ok quit ms="), lines[3])

	h := flbhost.Start(t, so, flbhost.Options{})
	_, err = h.Init(nil)
	require.NoError(t, err)
	require.NoError(t, h.Signal(os.Interrupt))
	q, err := h.Wait(30 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, 0, q.ExitCode)
	assert.Contains(t, h.Log(), "cb=unregister")
}

func TestSegfaultAfterLoadGoesToFluentBitHandler(t *testing.T) {
	h := flbhost.Start(t, testPlugin(t, "good"), flbhost.Options{})
	_, err := h.InitKV("crash", "on")
	require.NoError(t, err)
	_, err = h.Collect(0, 1)
	require.ErrorContains(t, err, "host exited without answering")
	assert.Contains(t, h.Stderr(), "[engine] caught signal (SIGSEGV)")
	assert.Equal(t, 128+int(syscall.SIGABRT), h.ExitCode(), "Fluent Bit's handler aborts")
}

func TestInitFailureAbortsStartup(t *testing.T) {
	for _, ret := range []string{"0", "-1"} {
		t.Run("ret="+ret, func(t *testing.T) {
			h := flbhost.Start(t, testPlugin(t, "good"), flbhost.Options{})
			_, err := h.Init(nil)
			require.NoError(t, err)
			res, err := h.InitKV("init_ret", ret)
			assert.Equal(t, "1 ret="+ret, cmdErr(t, err).Reason)
			assert.Equal(t, 1, res.Index)
			_, err = h.Collect(0, 1)
			assert.Contains(t, cmdErr(t, err).Reason, "startup aborted")
			_, err = h.Init(nil)
			assert.Contains(t, cmdErr(t, err).Reason, "startup aborted")
			q, err := h.Quit()
			require.Error(t, err)
			assert.Equal(t, 255, q.ExitCode)
			var got []string
			for _, l := range callbacks(parseLog(t, h.Log())) {
				got = append(got, l.CB)
			}
			assert.Equal(t, []string{"pre_register", "register", "init", "pre_run", "init", "unregister"}, got,
				"after a failed start Fluent Bit only calls FLBPluginUnregister")
		})
	}
}

func probes(t *testing.T, log string, tid int) map[string]string {
	out := map[string]string{}
	for _, l := range parseLog(t, log) {
		if strings.HasPrefix(strings.SplitN(l.Raw, "] ", 2)[1], "probe ") && l.TID == tid {
			for k, v := range l.KV {
				if k != "tid" {
					out[k] = v
				}
			}
		}
	}
	return out
}

func TestProperties(t *testing.T) {
	h := flbhost.Start(t, testPlugin(t, "good"), flbhost.Options{
		Env: []string{"FLBHOST_TEST_MSG=from-env"},
	})
	keys := []string{"message", "custom", "tag", "alias", "log_level", "host", "port", "listen",
		"mem_buf_limit", "storage.type", "threaded", "tls", "tls.verify", "tls.foo", "net.keepalive",
		"oauth2.key", "thread.ring_buffer.capacity", "rate_gate.max_records", "routable", "empty",
		"Message", "MESSAGE", "env", "envdef", "missing"}
	r, err := h.InitKV(
		"probe", strings.Join(keys, ","),
		"message", "m1",
		"Message", "duplicate: the first one wins",
		"custom", "c with spaces and \"quotes\"",
		"tag", "t", "alias", "al", "log_level", "debug", "host", "h", "port", "1",
		"listen", "0.0.0.0", "mem_buf_limit", "5M", "storage.type", "memory", "threaded", "on",
		"tls", "off", "tls.verify", "off", "tls.foo", "bar", "net.keepalive", "off",
		"oauth2.key", "k", "thread.ring_buffer.capacity", "64", "rate_gate.max_records", "10",
		"routable", "true", "empty", "",
		"env", "${FLBHOST_TEST_MSG}", "envdef", "x-${FLBHOST_UNSET_VAR:-dflt}-y",
	)
	require.NoError(t, err)
	assert.Equal(t, "al", r.Alias)
	assert.Equal(t, map[string]string{
		// "custom" is cut at the first blank by the probe parser; checked below
		"message": "m1", "Message": "m1", "MESSAGE": "m1", "custom": "c",
		"tag": "NULL", "alias": "NULL", "log_level": "NULL", "host": "NULL", "port": "NULL",
		"listen": "NULL", "mem_buf_limit": "NULL", "storage.type": "NULL", "threaded": "NULL",
		"tls": "NULL", "tls.verify": "NULL", "tls.foo": "bar", "net.keepalive": "NULL",
		"oauth2.key": "NULL", "thread.ring_buffer.capacity": "NULL", "rate_gate.max_records": "NULL",
		"routable": "NULL", "empty": "NULL", "env": "from-env", "envdef": "x-dflt-y", "missing": "NULL",
		"name": "al", "log_check_info": "1", "log_check_error": "1",
	}, probes(t, h.Log(), r.TID))
	assert.Contains(t, h.Log(), `custom=c with spaces and "quotes"`)

	quiet, err := h.InitKV("probe", "message", "log_level", "error")
	require.NoError(t, err)
	p := probes(t, h.Log(), quiet.TID)
	assert.Equal(t, "0", p["log_check_info"], "input_log_check(ins, info) with log_level error")
	assert.Equal(t, "1", p["log_check_error"])
	assert.Equal(t, "teleport.1", p["name"])
	assert.NotContains(t, h.Log(), "cb=init inst=1 ", "the plugin's info line is filtered by input_log_check")
}

func TestInvalidCoreProperty(t *testing.T) {
	for prop, want := range map[string]string{
		"log_level=loud":    "invalid log_level 'loud'",
		"threaded=maybe":    "invalid threaded 'maybe'",
		"tls=on":            "does not support TLS",
		"storage.type=tape": "invalid storage.type 'tape'",
		"mem_buf_limit=lot": "invalid mem_buf_limit 'lot'",
	} {
		t.Run(prop, func(t *testing.T) {
			h := flbhost.Start(t, testPlugin(t, "good"), flbhost.Options{})
			k, v, _ := strings.Cut(prop, "=")
			_, err := h.InitKV(k, v)
			assert.Contains(t, cmdErr(t, err).Reason, want)
			q, err := h.Quit()
			require.Error(t, err)
			assert.Equal(t, 255, q.ExitCode)
			assert.NotContains(t, h.Log(), "cb=init", "FLBPluginInit is never called")
		})
	}
}

func TestThreadedOffSharesTheEngineThread(t *testing.T) {
	h := flbhost.Start(t, testPlugin(t, "good"), flbhost.Options{})
	reg, _ := h.Registration()
	r0, err := h.InitKV("threaded", "off")
	require.NoError(t, err)
	r1, err := h.InitKV("threaded", "off")
	require.NoError(t, err)
	assert.False(t, r0.Threaded)
	assert.Equal(t, r0.TID, r1.TID, "threaded off: both run on the engine thread")
	assert.NotEqual(t, reg.MainTID, r0.TID)

	res, err := h.DrainAll(3, 10*time.Second, 0)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, res.PerInstance[0], 3)
	assert.GreaterOrEqual(t, res.PerInstance[1], 3)
	_, err = h.Quit()
	require.NoError(t, err)
	for _, l := range callbacks(parseLog(t, h.Log())) {
		if l.CB != "pre_register" && l.CB != "register" && l.CB != "unregister" {
			assert.Equal(t, r0.TID, l.TID, l.Raw)
		}
	}
}

func TestDrain(t *testing.T) {
	h := flbhost.Start(t, testPlugin(t, "good"), flbhost.Options{})
	_, err := h.InitKV("records", "3")
	require.NoError(t, err)
	d, err := h.Drain(0, 10, 10*time.Second, 0)
	require.NoError(t, err)
	assert.Equal(t, 12, d.Records, "4 collects of 3 records")
	assert.Equal(t, 4, d.Calls)
	assert.Equal(t, 4, d.Buffers)

	d, err = h.Drain(0, 6, 10*time.Second, 20*time.Millisecond)
	require.NoError(t, err)
	assert.Equal(t, 6, d.Records)
	assert.GreaterOrEqual(t, d.Elapsed, 20*time.Millisecond, "slept once between the two calls")

	e := flbhost.Start(t, testPlugin(t, "leak"), flbhost.Options{})
	_, err = e.InitKV("mode", "nothing")
	require.NoError(t, err)
	d, err = e.Drain(0, 1, 200*time.Millisecond, 20*time.Millisecond)
	assert.True(t, strings.HasPrefix(cmdErr(t, err).Reason, "0 timeout records=0"), err.Error())
	assert.Equal(t, 0, d.Records)
	assert.GreaterOrEqual(t, d.Calls, 2)
	assert.GreaterOrEqual(t, d.Elapsed, 200*time.Millisecond)
}

func TestDrainAllRunsInstancesConcurrently(t *testing.T) {
	h := flbhost.Start(t, testPlugin(t, "good"), flbhost.Options{})
	for i := 0; i < 2; i++ {
		_, err := h.InitKV("collect_sleep_ms", "200")
		require.NoError(t, err)
	}
	res, err := h.DrainAll(4, 20*time.Second, 0)
	require.NoError(t, err)
	assert.Equal(t, 2, res.Instances)
	assert.Equal(t, map[int]int{0: 4, 1: 4}, res.PerInstance)
	assert.Equal(t, 8, res.Calls)
	// 4 calls of 200 ms each per instance: about 0.8 s in parallel, 1.6 s in sequence
	assert.Less(t, res.Elapsed, 1500*time.Millisecond, "instances drained in parallel")
	assert.GreaterOrEqual(t, res.Elapsed, 800*time.Millisecond)
}

func TestSlowCallbackWarns(t *testing.T) {
	h := flbhost.Start(t, testPlugin(t, "good"), flbhost.Options{})
	_, err := h.InitKV("collect_sleep_ms", "1100")
	require.NoError(t, err)
	_, err = h.Collect(0, 1)
	require.NoError(t, err)
	// Stderr is copied by another goroutine: the line may come after the answer.
	require.Eventually(t, func() bool { return strings.Contains(h.Stderr(), "warn slow FLBPluginInputCallbackCtx 1") },
		10*time.Second, 10*time.Millisecond, h.Stderr())
	st, err := h.Stats()
	require.NoError(t, err)
	assert.Equal(t, 1, st.Slow)
	assert.GreaterOrEqual(t, st.MaxCollect, 1100*time.Millisecond)
}

func TestAPIMisuseIsCounted(t *testing.T) {
	h := flbhost.Start(t, testPlugin(t, "good"), flbhost.Options{})
	_, err := h.InitKV("misuse", "on")
	require.NoError(t, err)
	_, err = h.Collect(0, 1)
	require.NoError(t, err)
	st, err := h.Stats()
	require.NoError(t, err)
	assert.Equal(t, 1, st.Misuse)
	assert.Contains(t, h.Stderr(), "which is not an input instance")
	q, err := h.Quit()
	require.Error(t, err)
	assert.Equal(t, 1, q.ExitCode)
	assert.Equal(t, 1, q.Misuse)
}

func TestCommandErrors(t *testing.T) {
	h := flbhost.Start(t, testPlugin(t, "good"), flbhost.Options{})
	_, err := h.Collect(0, 1)
	assert.Equal(t, "0 no such instance", cmdErr(t, err).Reason)
	_, err = h.Cmd("frobnicate")
	assert.Equal(t, "unknown command", cmdErr(t, err).Reason)
	_, err = h.Cmd("init novalue")
	assert.Contains(t, cmdErr(t, err).Reason, "bad property")
	_, err = h.Cmd("collect 0\nquit")
	require.ErrorContains(t, err, "newline")
	line, err := h.Cmd("ping")
	require.NoError(t, err)
	assert.Equal(t, "ok ping", line)
}

// The host models Fluent Bit's ring buffer: a collect copies the buffer onto
// it and cleans up at once, and the collector moves it into the records
// file later; backpressure keeps it there, and a kill or an exit loses it.
func TestRingBuffer(t *testing.T) {
	h := flbhost.Start(t, testPlugin(t, "good"), flbhost.Options{RingBufferByHand: true})
	_, err := h.InitKV("records", "3")
	require.NoError(t, err)
	inFile := func(h *flbhost.Host) int {
		recs, err := flbhost.ReadRecords(h.RecordsPath())
		require.NoError(t, err)
		return len(recs)
	}
	c, err := h.Collect(0, 1)
	require.NoError(t, err)
	assert.Equal(t, 3, c.Records, "handed over")
	st, err := h.Stats()
	require.NoError(t, err)
	assert.Equal(t, 3, st.Queued)
	assert.Equal(t, 0, st.Records)
	assert.Equal(t, 0, inFile(h))

	require.NoError(t, h.CollectRingBuffer())
	st, err = h.Stats()
	require.NoError(t, err)
	assert.Equal(t, 0, st.Queued)
	assert.Equal(t, 3, st.Records)
	assert.Equal(t, 3, inFile(h))

	_, err = h.Collect(0, 1)
	require.NoError(t, err)
	_, err = h.Pause(0)
	require.NoError(t, err)
	require.NoError(t, h.CollectRingBuffer())
	st, err = h.Stats()
	require.NoError(t, err)
	assert.Equal(t, 3, st.Queued, "not moved while paused by backpressure")
	require.NoError(t, h.Resume(0))
	_, err = h.Collect(0, 1)
	require.NoError(t, err)
	_, err = h.Quit()
	require.NoError(t, err)
	assert.Equal(t, 3, inFile(h), "dropped at exit")
	assert.Contains(t, h.Stderr(), "ring buffer of instance 0 dropped at exit: 6 records")

	k := flbhost.Start(t, testPlugin(t, "good"), flbhost.Options{RingBufferByHand: true})
	_, err = k.InitKV("records", "3")
	require.NoError(t, err)
	_, err = k.Collect(0, 2)
	require.NoError(t, err)
	require.NoError(t, k.Kill())
	assert.Equal(t, 0, inFile(k), "lost at a kill")

	// With the timer (Fluent Bit's 250 ms by default), a collect answers
	// once its buffer is in the file.
	d := flbhost.Start(t, testPlugin(t, "good"), flbhost.Options{RingBuffer: 20 * time.Millisecond})
	_, err = d.InitKV("records", "3")
	require.NoError(t, err)
	_, err = d.Collect(0, 2)
	require.NoError(t, err)
	assert.Equal(t, 6, inFile(d))
}
