package testenv

import (
	"fmt"
	"strings"
	"sync"
)

// Log is a logger for the plugin's packages that keeps every line as
// "<level> <text>", for tests that check what was logged.
type Log struct {
	mu    sync.Mutex
	lines []string
}

func (l *Log) add(level, f string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, level+" "+fmt.Sprintf(f, a...))
}

func (l *Log) Errorf(f string, a ...any) { l.add("error", f, a...) }
func (l *Log) Warnf(f string, a ...any)  { l.add("warn", f, a...) }
func (l *Log) Infof(f string, a ...any)  { l.add("info", f, a...) }
func (l *Log) Debugf(f string, a ...any) { l.add("debug", f, a...) }

// Lines returns a copy of the lines so far.
func (l *Log) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// Count returns how many lines contain s.
func (l *Log) Count(s string) int {
	n := 0
	for _, x := range l.Lines() {
		if strings.Contains(x, s) {
			n++
		}
	}
	return n
}

// Has reports whether a line contains s.
func (l *Log) Has(s string) bool { return l.Count(s) > 0 }
