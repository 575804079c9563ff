package teleportsrc

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A file that is not an identity file at all (a wrong path, a PEM file, a
// half-written download) is named as such, with the commands that write one,
// not with the API library's "could not find SSH cert".
func TestGarbageIdentityFileSaysWhatWritesOne(t *testing.T) {
	for name, content := range map[string]string{
		"text":  "not an identity",
		"empty": "",
		"pem":   "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "identity")
			require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
			_, _, err := NewCredentials(CredentialFiles{Identity: p}).Load()
			require.Error(t, err)
			assert.Contains(t, err.Error(), p+" is not a Teleport identity file")
			assert.Contains(t, err.Error(), "tctl auth sign --format=file")
			assert.Contains(t, err.Error(), "tbot")
		})
	}
}
