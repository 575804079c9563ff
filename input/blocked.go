package input

import (
	"errors"
	"fmt"
)

// blockedError is a fault that retrying cannot heal, only the operator
// (another cluster than the saved position's, bulk export asked of a
// cluster without it). Its message says what to do; it is logged once and
// checked again every Timing.BlockedRetry, not logged and counted every 30 s.
type blockedError struct{ msg string }

func (e blockedError) Error() string { return e.msg }

func blocked(format string, args ...any) error {
	return blockedError{fmt.Sprintf(format, args...)}
}

// handleBlocked logs a blocking fault the first time it is seen (or when it
// changes) and reports whether err is one.
func (x *Instance) handleBlocked(err error) bool {
	var b blockedError
	if !errors.As(err, &b) {
		return false
	}
	x.blockedMu.Lock()
	defer x.blockedMu.Unlock()
	if x.blockedMsg != b.msg {
		x.blockedMsg = b.msg
		x.stats.Blocked.Store(true)
		x.stats.Errors.Add(1)
		x.log.Errorf("%s (the export waits for this; checking again every %s)", b.msg, x.timing.BlockedRetry)
	} else {
		x.log.Debugf("still blocked by the fault logged before; checking again in %s", x.timing.BlockedRetry)
	}
	return true
}

// unblocked notes that the export got past the checks that block it.
func (x *Instance) unblocked() {
	x.blockedMu.Lock()
	defer x.blockedMu.Unlock()
	if x.blockedMsg != "" {
		x.log.Infof("no longer blocked (%s): exporting", x.blockedMsg)
		x.blockedMsg = ""
		x.stats.Blocked.Store(false)
	}
}
