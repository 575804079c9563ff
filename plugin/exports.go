// Command plugin is the Fluent Bit input plugin "teleport", built with
// -buildmode=c-shared. This package only adapts Fluent Bit's Go-proxy ABI to
// package input; it holds no business logic.
package main

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/conf"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/emit"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/input"
	flbinput "github.com/fluent/fluent-bit-go/input"
)

// Fluent Bit's return codes.
const (
	flbError = 0
	flbOK    = 1
)

// stopTimeout bounds how long Exit waits for the fetcher, so shutdown and
// hot reload never wait on the network.
const stopTimeout = 500 * time.Millisecond

func main() {}

// The display name and description Fluent Bit lists; it keeps pointers to
// them (flb_proxy_register_input in src/flb_plugin_proxy.c) until
// FLBPluginUnregister.
const (
	pluginName        = "teleport"
	pluginDescription = "Teleport audit events"
)

//export FLBPluginRegister
func FLBPluginRegister(def unsafe.Pointer) C.int {
	return C.int(flbinput.FLBPluginRegister(def, pluginName, pluginDescription))
}

//export FLBPluginInit
func FLBPluginInit(plugin unsafe.Pointer) C.int {
	api, ins := C.tp_api(plugin), C.tp_instance(plugin)
	tid := syscall.Gettid()
	name := instanceName(ins)
	log := newFLBLogger(api, ins, fmt.Sprintf("[input:teleport:%s] ", name))

	getter := propertyGetter{plugin}
	cfg, err := conf.Parse(getter)
	err = errors.Join(err, conf.Unknown(listProperties(api, ins, getter)))
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			log.Errorf("%s", line)
		}
		return flbError
	}
	if other := threadTaken(tid); other != nil {
		log.Errorf("shares a thread with input %s: remove `threaded off` (several teleport inputs need their own threads)", other.name)
		return flbError
	}
	inst, err := input.New(input.Options{Config: cfg, Name: name, Log: log})
	if err != nil {
		log.Errorf("%v", err)
		return flbError
	}
	in := &instance{tid: tid, name: name, inst: inst, log: log, pending: map[unsafe.Pointer]*emit.Batch{}}
	register(in)
	C.tp_set_context(plugin, in.handle)
	log.Infof("settings: %s", cfg.Summary())
	inst.Start()
	return flbOK
}

//export FLBPluginInputCallbackCtx
func FLBPluginInputCallbackCtx(ctx unsafe.Pointer, data *unsafe.Pointer, size *C.size_t) C.int {
	return collect(byHandle(ctx), data, size)
}

// FLBPluginInputCallback serves Fluent Bit versions without the *Ctx
// callbacks (before 4.1), where only one instance can be told apart.
//
//export FLBPluginInputCallback
func FLBPluginInputCallback(data *unsafe.Pointer, size *C.size_t) C.int {
	return collect(byThread(syscall.Gettid()), data, size)
}

func collect(in *instance, data *unsafe.Pointer, size *C.size_t) C.int {
	*data, *size = nil, 0
	if in == nil {
		return flbOK
	}
	in.log.flush()
	b := in.inst.Collect()
	if len(b.Records) == 0 {
		// Nothing to hand over, so positions reached (filtered events,
		// empty windows) can be saved right away.
		in.inst.Commit(b)
		return flbOK
	}
	buf := C.malloc(C.size_t(b.Size))
	b.CopyTo(unsafe.Slice((*byte)(buf), b.Size))
	in.mu.Lock()
	in.pending[buf] = b
	in.mu.Unlock()
	*data, *size = buf, C.size_t(b.Size)
	return flbOK
}

// Fluent Bit calls the cleanup callback right after it appended the buffer
// to its input chunk: the batch is Fluent Bit's now, so its positions move.
//
//export FLBPluginInputCleanupCallbackCtx
func FLBPluginInputCleanupCallbackCtx(ctx, data unsafe.Pointer) C.int {
	cleanup(byHandle(ctx), data)
	return 0
}

//export FLBPluginInputCleanupCallback
func FLBPluginInputCleanupCallback(data unsafe.Pointer) C.int {
	cleanup(byThread(syscall.Gettid()), data)
	return 0
}

func cleanup(in *instance, data unsafe.Pointer) {
	if in != nil {
		in.mu.Lock()
		b := in.pending[data]
		delete(in.pending, data)
		in.mu.Unlock()
		if b != nil {
			in.inst.Commit(b)
		}
	}
	C.free(data)
}

//export FLBPluginInputPause
func FLBPluginInputPause() {
	if in := byThread(syscall.Gettid()); in != nil {
		in.inst.Pause()
		in.log.Debugf("paused by Fluent Bit (backpressure or shutdown)")
		in.log.flush()
	}
}

//export FLBPluginInputResume
func FLBPluginInputResume() {
	if in := byThread(syscall.Gettid()); in != nil {
		in.inst.Resume()
		in.log.Debugf("resumed by Fluent Bit")
		in.log.flush()
	}
}

//export FLBPluginInputPreExit
func FLBPluginInputPreExit(hotReload C.int) {}

// FLBPluginExit runs once per instance, on its thread, with no context.
//
//export FLBPluginExit
func FLBPluginExit() C.int {
	if in := byThread(syscall.Gettid()); in != nil {
		stop(in)
	}
	return flbOK
}

// FLBPluginUnregister runs when Fluent Bit drops the plugin: at shutdown, on
// hot reload, and when start-up fails after Init (then without Exit), so it
// stops whatever is still running.
//
//export FLBPluginUnregister
func FLBPluginUnregister(def unsafe.Pointer) {
	for _, in := range all() {
		stop(in)
	}
	flbinput.FLBPluginUnregister(def)
}

func stop(in *instance) {
	in.inst.Stop(stopTimeout)
	in.mu.Lock()
	for buf := range in.pending {
		C.free(buf)
	}
	in.pending = nil
	in.mu.Unlock()
	in.log.close()
	unregister(in)
}

// propertyGetter reads settings through Fluent Bit's API; valid only during
// FLBPluginInit, when the shared plugin struct points at this instance.
type propertyGetter struct{ plugin unsafe.Pointer }

func (g propertyGetter) Get(key string) string {
	return flbinput.FLBPluginConfigKey(g.plugin, key)
}

// listProperties returns the keys the user set, or nil if they cannot be
// listed (then unknown keys go unreported).
func listProperties(api, ins unsafe.Pointer, g propertyGetter) []string {
	for _, k := range conf.Keys() {
		if g.Get(k) == "" {
			continue
		}
		ck := C.CString(k)
		buf := make([]byte, 64<<10)
		n := C.tp_list_properties(api, ins, ck, (*C.char)(unsafe.Pointer(&buf[0])), C.int(len(buf)))
		C.free(unsafe.Pointer(ck))
		if n < 0 {
			return nil
		}
		return strings.SplitN(string(buf), "\x00", int(n)+1)[:n]
	}
	return nil
}

var anonymous int

func instanceName(ins unsafe.Pointer) string {
	if n := C.tp_instance_name(ins); n != nil {
		return C.GoString(n)
	}
	anonymous++
	return fmt.Sprintf("teleport.%d", anonymous-1)
}
