package main

import (
	"io"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Once closed, the logger leaves Fluent Bit alone (here there is none: a call
// into it would crash): warnings and errors go to stderr, the rest nowhere.
func TestClosedLoggerDoesNotCallFluentBit(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	stderr := os.Stderr
	os.Stderr = w
	defer func() { os.Stderr = stderr }()

	l := newFLBLogger(nil, nil, "[input:teleport:t] ")
	l.close()
	l.Errorf("late %d", 1)
	l.Infof("dropped")
	l.Warnf("late %d", 2)
	l.Debugf("dropped")
	require.NoError(t, w.Close())
	out, err := io.ReadAll(r)
	require.NoError(t, err)
	assert.Equal(t, "[error] [input:teleport:t] late 1\n[warn] [input:teleport:t] late 2\n", string(out))
}
