package main

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// flbLogger writes through Fluent Bit's logger with the prefix Fluent Bit
// gives its own plugins ("[input:teleport:teleport.0] "), honouring the
// instance's log_level.
//
// Fluent Bit routes a line to its log pipeline (log_file, log metrics) only
// when it is printed on one of its own threads; from any other thread it
// goes straight to stderr. So lines from the fetcher goroutines wait in a
// short queue that the instance's callbacks flush on their thread, and are
// printed directly only if the callbacks have stopped coming (paused input).
//
// Goroutines can outlive the instance (a fetcher stuck on the network past
// Stop's timeout), so once closed the logger no longer calls Fluent Bit.
type flbLogger struct {
	api, ins unsafe.Pointer
	prefix   string
	tid      int

	// closeMu is held for reading while a line goes into Fluent Bit.
	closeMu sync.RWMutex
	closed  bool

	mu        sync.Mutex
	pending   []pendingLine
	lastFlush time.Time
}

type pendingLine struct {
	level C.int
	msg   string
}

const (
	maxPendingLines = 200
	staleFlush      = 3 * time.Second
)

func newFLBLogger(api, ins unsafe.Pointer, prefix string) *flbLogger {
	return &flbLogger{api: api, ins: ins, prefix: prefix, tid: syscall.Gettid(), lastFlush: time.Now()}
}

func (l *flbLogger) Errorf(f string, a ...any) { l.logf(C.TP_LOG_ERROR, f, a...) }
func (l *flbLogger) Warnf(f string, a ...any)  { l.logf(C.TP_LOG_WARN, f, a...) }
func (l *flbLogger) Infof(f string, a ...any)  { l.logf(C.TP_LOG_INFO, f, a...) }
func (l *flbLogger) Debugf(f string, a ...any) { l.logf(C.TP_LOG_DEBUG, f, a...) }

func (l *flbLogger) logf(level C.int, format string, args ...any) {
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if l.closed {
		switch level {
		case C.TP_LOG_ERROR:
			fmt.Fprintf(os.Stderr, "[error] %s%s\n", l.prefix, fmt.Sprintf(format, args...))
		case C.TP_LOG_WARN:
			fmt.Fprintf(os.Stderr, "[warn] %s%s\n", l.prefix, fmt.Sprintf(format, args...))
		}
		return
	}
	if C.tp_log_check(l.api, l.ins, level) == 0 {
		return
	}
	msg := l.prefix + fmt.Sprintf(format, args...)
	if syscall.Gettid() == l.tid {
		l.flush()
		l.print(level, msg)
		return
	}
	l.mu.Lock()
	direct := len(l.pending) >= maxPendingLines || time.Since(l.lastFlush) > staleFlush
	if !direct {
		l.pending = append(l.pending, pendingLine{level, msg})
	}
	l.mu.Unlock()
	if direct {
		l.print(level, msg)
	}
}

// flush prints queued lines; call it on the instance's thread.
func (l *flbLogger) flush() {
	l.mu.Lock()
	lines := l.pending
	l.pending = nil
	l.lastFlush = time.Now()
	l.mu.Unlock()
	for _, p := range lines {
		l.print(p.level, p.msg)
	}
}

func (l *flbLogger) print(level C.int, msg string) {
	cs := C.CString(msg)
	C.tp_log(l.api, level, cs)
	C.free(unsafe.Pointer(cs))
}

// close prints the queued lines and detaches the logger from Fluent Bit:
// later warnings and errors go to stderr, other lines nowhere. Call it on
// the instance's thread before Fluent Bit frees the instance; it waits for
// lines being printed by other goroutines.
func (l *flbLogger) close() {
	l.closeMu.Lock()
	defer l.closeMu.Unlock()
	if !l.closed {
		l.flush()
		l.closed = true
	}
}

// The Teleport API client logs through log/slog; its INFO lines (dial
// attempts) would interleave with Fluent Bit's output, so keep warnings and
// errors only, in Fluent Bit's style.
func init() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{
		Level: slog.LevelWarn,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			if a.Key == slog.MessageKey && len(groups) == 0 {
				a.Value = slog.StringValue("[input:teleport] teleport api: " + a.Value.String())
			}
			return a
		},
	})))
}
