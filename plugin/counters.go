package main

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import "unsafe"

// counters reads the instance's fluentbit_input_records_total and
// fluentbit_input_ring_buffer_writes_total from Fluent Bit's own metrics
// (see tp_input_counter in shim.c).
type counters struct {
	records, writes unsafe.Pointer
	label           *C.char // the instance's name, the counters' label
}

// newCounters finds the counters of instance ins, or returns nil where
// Fluent Bit has none (built without metrics, or another layout).
func newCounters(ins unsafe.Pointer, name string) *counters {
	cr, cw := C.CString("records_total"), C.CString("ring_buffer_writes_total")
	defer C.free(unsafe.Pointer(cr))
	defer C.free(unsafe.Pointer(cw))
	c := &counters{records: C.tp_input_counter(ins, cr), writes: C.tp_input_counter(ins, cw)}
	if c.records == nil || c.writes == nil {
		return nil
	}
	// Kept for the life of the process: Read may run until Exit, and a few
	// bytes per instance and reload do not matter.
	c.label = C.CString(name)
	if _, _, ok := c.Read(); !ok {
		C.free(unsafe.Pointer(c.label))
		return nil
	}
	return c
}

func (c *counters) Read() (records, writes float64, ok bool) {
	var r, w C.double
	if C.tp_counter_value(c.records, c.label, &r) != 0 || C.tp_counter_value(c.writes, c.label, &w) != 0 {
		return 0, 0, false
	}
	return float64(r), float64(w), true
}
