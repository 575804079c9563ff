package main

/*
#include <stdlib.h>
*/
import "C"

import (
	"sync"
	"unsafe"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/input"
)

// instance is one [INPUT] of this plugin as the exports see it.
type instance struct {
	handle unsafe.Pointer // C memory: Fluent Bit's remote_context for us
	tid    int            // the Fluent Bit thread that runs its callbacks
	name   string
	inst   *input.Instance
	log    *flbLogger
}

// registry finds an instance by the context Fluent Bit passes to the *Ctx
// callbacks, or, for the callbacks that get no context (Pause, Resume, Exit),
// by the thread they run on: Fluent Bit runs every callback of an input
// instance on that instance's own thread.
var registry = struct {
	sync.Mutex
	byHandle map[unsafe.Pointer]*instance
	byTid    map[int]*instance
}{byHandle: map[unsafe.Pointer]*instance{}, byTid: map[int]*instance{}}

func register(in *instance) {
	// A C allocation, so no Go pointer is stored in C memory.
	in.handle = C.malloc(1)
	registry.Lock()
	defer registry.Unlock()
	registry.byHandle[in.handle] = in
	registry.byTid[in.tid] = in
}

func unregister(in *instance) {
	registry.Lock()
	delete(registry.byHandle, in.handle)
	if registry.byTid[in.tid] == in {
		delete(registry.byTid, in.tid)
	}
	registry.Unlock()
	C.free(in.handle)
}

func byHandle(h unsafe.Pointer) *instance {
	registry.Lock()
	defer registry.Unlock()
	return registry.byHandle[h]
}

// byThread returns the instance of this thread; if no instance is bound to
// it and exactly one exists, that one (a single instance is unambiguous).
func byThread(tid int) *instance {
	registry.Lock()
	defer registry.Unlock()
	if in := registry.byTid[tid]; in != nil {
		return in
	}
	if len(registry.byHandle) == 1 {
		for _, in := range registry.byHandle {
			return in
		}
	}
	return nil
}

func all() []*instance {
	registry.Lock()
	defer registry.Unlock()
	out := make([]*instance, 0, len(registry.byHandle))
	for _, in := range registry.byHandle {
		out = append(out, in)
	}
	return out
}

func threadTaken(tid int) *instance {
	registry.Lock()
	defer registry.Unlock()
	return registry.byTid[tid]
}
