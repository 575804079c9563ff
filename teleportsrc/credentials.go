// Package teleportsrc talks to Teleport: it loads credentials, connects to
// the cluster and reads audit events through github.com/gravitational/teleport/api.
package teleportsrc

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gravitational/teleport/api/client"
	"github.com/gravitational/teleport/api/constants"
	apissh "github.com/gravitational/teleport/api/ssh"
	"github.com/gravitational/trace"
	"golang.org/x/net/http2"
)

// reloadable is a client.Credentials that can re-read its files. New TLS
// handshakes of a live connection use whatever was loaded last, so a renewed
// identity takes effect without a restart.
type reloadable interface {
	client.Credentials
	Reload() error
}

// CredentialFiles name the credentials: an identity file, or a certificate,
// its key and the cluster's CA.
type CredentialFiles struct {
	Identity      string
	Cert, Key, CA string
}

// Credentials loads the credentials in its files and reloads them when the
// files change on disk (tbot renews identities every few minutes).
type Credentials struct {
	creds  reloadable
	files  []string
	what   string
	stamps []stamp
	loaded bool
}

type stamp struct {
	mod  time.Time
	size int64
	ino  uint64
}

// NewCredentials prepares the credentials in f; nothing is read yet.
func NewCredentials(f CredentialFiles) *Credentials {
	if f.Identity != "" {
		return &Credentials{
			creds: &client.DynamicIdentityFileCreds{Path: f.Identity},
			files: []string{f.Identity},
			what:  "identity file " + f.Identity,
		}
	}
	return &Credentials{
		creds: &keyPair{certFile: f.Cert, keyFile: f.Key, caFile: f.CA},
		files: []string{f.Cert, f.Key, f.CA},
		what:  "cert_file " + f.Cert,
	}
}

// Client is what client.New takes.
func (c *Credentials) Client() client.Credentials { return c.creds }

// Describe names the credentials in log lines ("identity file /path").
func (c *Credentials) Describe() string { return c.what }

// Expiry is when the loaded certificate expires.
func (c *Credentials) Expiry() (time.Time, bool) {
	if !c.loaded {
		return time.Time{}, false
	}
	return c.creds.Expiry()
}

// Load reads the files if they changed since the last successful load (or
// were never loaded). It reports whether it loaded, any warning to log
// (permissions), and an error that says what to fix. On error the previously
// loaded credentials stay in use.
func (c *Credentials) Load() (loaded bool, warning string, err error) {
	stamps := make([]stamp, len(c.files))
	for i, f := range c.files {
		fi, err := os.Stat(f)
		if err != nil {
			return false, "", c.fileError(f, err)
		}
		stamps[i] = statStamp(fi)
	}
	if c.loaded && slices.Equal(stamps, c.stamps) {
		return false, "", nil
	}
	if err := c.creds.Reload(); err != nil {
		return false, "", c.parseError(err)
	}
	c.stamps, c.loaded = stamps, true
	var warnings []string
	for _, f := range c.files {
		if w := permissionWarning(f); w != "" {
			warnings = append(warnings, w)
		}
	}
	return true, strings.Join(warnings, "; "), nil
}

// CheckValid returns an error naming the file when the loaded certificate is
// expired or not yet valid, so that an expired identity is reported at once
// instead of after a dial timeout.
func (c *Credentials) CheckValid(now time.Time) error {
	exp, ok := c.Expiry()
	if !ok {
		return nil
	}
	if now.After(exp) {
		return fmt.Errorf("the certificate in %s expired at %s (%s ago): %s",
			c.what, exp.UTC().Format(time.RFC3339), now.Sub(exp).Round(time.Second), c.renewHint())
	}
	return nil
}

func (c *Credentials) renewHint() string {
	return "issue a new one with `tctl auth sign --user=<user> --format=file --ttl=<ttl> --out=<file>`, or check that tbot is running and renewing it"
}

func (c *Credentials) fileError(f string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("credential file %s does not exist: write it with `tctl auth sign` or point tbot's identity output at it (if tbot starts alongside Fluent Bit, this resolves itself once it has written the file)", f)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("credential file %s is not readable by the Fluent Bit user (uid %d): fix its owner or mode (0600, owned by that user)", f, os.Getuid())
	}
	return fmt.Errorf("credential file %s: %v", f, err)
}

func (c *Credentials) parseError(err error) error {
	if errors.Is(err, fs.ErrPermission) || trace.IsAccessDenied(err) {
		return fmt.Errorf("%s is not readable by the Fluent Bit user (uid %d): fix its owner or mode (0600, owned by that user)", c.what, os.Getuid())
	}
	if len(c.files) == 1 {
		// The API library's own words ("could not find SSH cert in the
		// identity file or <file>-cert.pub") point at a file nobody wrote.
		return fmt.Errorf("%s is not a Teleport identity file (no SSH certificate, TLS certificate and key in it): write one with `tctl auth sign --format=file --user=<user> --out=%s`, or point a tbot identity output at it", c.what, c.files[0])
	}
	return fmt.Errorf("cannot load %s: %v: it must be PEM files from `tctl auth sign --format=tls` (cert_file, key_file) and the cluster's CA (ca_file)", c.what, trace.UserMessage(err))
}

// permissionWarning says whether a credential file is open to every user of
// the machine ("others"), which exposes the cluster's trust. Group access is
// left alone: Kubernetes mounts Secrets for a non-root pod through its
// fsGroup.
func permissionWarning(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	if mode := fi.Mode().Perm(); mode&0o007 != 0 {
		return fmt.Sprintf("credential file %s is readable by other users (mode %04o): run `chmod 600 %s`", path, mode, path)
	}
	return ""
}

func statStamp(fi os.FileInfo) stamp {
	return stamp{mod: fi.ModTime(), size: fi.Size(), ino: inode(fi)}
}

// keyPair is a reloadable certificate, key and CA triple. Like Teleport's
// own key-pair credentials it connects straight to the Auth Service (no
// SSH certificate, so no proxy or tunnel).
type keyPair struct {
	certFile, keyFile, caFile string

	mu    sync.RWMutex
	cert  *tls.Certificate
	roots *x509.CertPool
}

func (k *keyPair) Reload() error {
	cert, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		return err
	}
	pemCA, err := os.ReadFile(k.caFile)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemCA) {
		return fmt.Errorf("ca_file %s holds no PEM certificate", k.caFile)
	}
	k.mu.Lock()
	k.cert, k.roots = &cert, roots
	k.mu.Unlock()
	return nil
}

// TLSConfig verifies the server against the CA loaded when the connection is
// made; the client certificate is looked up per handshake so a renewed one
// is used on the next reconnect.
func (k *keyPair) TLSConfig() (*tls.Config, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.cert == nil {
		return nil, errors.New("credentials not loaded")
	}
	return &tls.Config{
		RootCAs:    k.roots,
		ServerName: constants.APIDomain,
		NextProtos: []string{http2.NextProtoTLS},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			k.mu.RLock()
			defer k.mu.RUnlock()
			return k.cert, nil
		},
	}, nil
}

func (k *keyPair) SSHClientConfig() (apissh.ClientConfig, error) {
	return apissh.ClientConfig{}, trace.NotImplemented("key pair credentials carry no SSH certificate")
}

func (k *keyPair) Expiry() (time.Time, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.cert == nil || len(k.cert.Certificate) == 0 {
		return time.Time{}, false
	}
	c, err := x509.ParseCertificate(k.cert.Certificate[0])
	if err != nil {
		return time.Time{}, false
	}
	return c.NotAfter, true
}
