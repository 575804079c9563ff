package teleportfake

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/gravitational/teleport/api/identityfile"
	"golang.org/x/crypto/ssh"
)

// apiDomain is the SNI the Teleport API client sends when it dials an Auth
// Service directly; every server certificate must carry it as a SAN.
const apiDomain = "teleport.cluster.local"

// certAuthority is a throwaway X.509 CA.
type certAuthority struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

// pki holds the key material created by Start.
type pki struct {
	hostCA    *certAuthority // signs the server certificate; listed in identity files
	userCA    *certAuthority // signs client certificates; trusted by the server
	sshCA     ssh.Signer     // signs the SSH user certificates identity files need
	serverTLS tls.Certificate
}

func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// newKeyAndSerial is what every certificate starts from.
func newKeyAndSerial() (*ecdsa.PrivateKey, *big.Int, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := newSerial()
	return key, serial, err
}

func newCA(commonName, cluster string) (*certAuthority, error) {
	key, serial, err := newKeyAndSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{cluster}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &certAuthority{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}, nil
}

// issue signs a leaf certificate for pub and returns it in DER and PEM form.
func (ca *certAuthority) issue(tmpl *x509.Certificate, pub crypto.PublicKey) ([]byte, []byte, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, nil, err
	}
	return der, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

func newPKI(cluster string) (*pki, error) {
	hostCA, err := newCA("host CA "+cluster, cluster)
	if err != nil {
		return nil, fmt.Errorf("host CA: %w", err)
	}
	userCA, err := newCA("user CA "+cluster, cluster)
	if err != nil {
		return nil, fmt.Errorf("user CA: %w", err)
	}
	sshKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sshCA, err := ssh.NewSignerFromKey(sshKey)
	if err != nil {
		return nil, err
	}

	serverKey, serial, err := newKeyAndSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	der, _, err := hostCA.issue(&x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: apiDomain, Organization: []string{cluster}},
		DNSNames:     []string{apiDomain, "localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}, &serverKey.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	return &pki{
		hostCA: hostCA,
		userCA: userCA,
		sshCA:  sshCA,
		serverTLS: tls.Certificate{
			Certificate: [][]byte{der},
			PrivateKey:  serverKey,
		},
	}, nil
}

// IdentityOptions controls the client identity written by WriteIdentityFile
// and WriteKeyPair.
type IdentityOptions struct {
	User      string    // client certificate CN; default "fluent-bit"
	Roles     []string  // client certificate Organization; default ["audit-exporter"]
	NotBefore time.Time // default now-1m
	NotAfter  time.Time // default now+1h; a past value gives an expired identity
	// UntrustedClientCA signs the client certificate with a CA the server does
	// not trust, so the server rejects the client during the TLS handshake.
	UntrustedClientCA bool
	// WrongServerCA lists a CA in the identity that did not sign the server
	// certificate, so the client rejects the server.
	WrongServerCA bool
}

func (o *IdentityOptions) setDefaults() {
	if o.User == "" {
		o.User = "fluent-bit"
	}
	if len(o.Roles) == 0 {
		o.Roles = []string{"audit-exporter"}
	}
	now := time.Now()
	if o.NotBefore.IsZero() {
		o.NotBefore = now.Add(-time.Minute)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = now.Add(time.Hour)
	}
}

// clientIdentity is the material for one client identity.
type clientIdentity struct {
	keyPEM     []byte // PKCS#8
	tlsCertPEM []byte
	sshCert    []byte // authorized_keys format
	caPEM      []byte // the TLS CA the client trusts for the server
	serial     *big.Int
}

func (s *Server) newClientIdentity(o IdentityOptions) (*clientIdentity, error) {
	o.setDefaults()
	key, serial, err := newKeyAndSerial()
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}

	signer := s.pki.userCA
	if o.UntrustedClientCA {
		if signer, err = newCA("untrusted user CA", s.cfg.ClusterName); err != nil {
			return nil, err
		}
	}
	trusted := s.pki.hostCA
	if o.WrongServerCA {
		if trusted, err = newCA("unrelated host CA", s.cfg.ClusterName); err != nil {
			return nil, err
		}
	}

	_, certPEM, err := signer.issue(&x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: o.User, Organization: append([]string(nil), o.Roles...)},
		NotBefore:    o.NotBefore,
		NotAfter:     o.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, &key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}

	sshPub, err := ssh.NewPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	sshCert := &ssh.Certificate{
		Key:             sshPub,
		Serial:          serial.Uint64(),
		CertType:        ssh.UserCert,
		KeyId:           o.User,
		ValidPrincipals: []string{o.User},
		ValidAfter:      unixOrZero(o.NotBefore),
		ValidBefore:     unixOrZero(o.NotAfter),
		Permissions: ssh.Permissions{Extensions: map[string]string{
			"permit-port-forwarding": "",
			"permit-pty":             "",
		}},
	}
	if err := sshCert.SignCert(rand.Reader, s.pki.sshCA); err != nil {
		return nil, fmt.Errorf("ssh certificate: %w", err)
	}

	return &clientIdentity{
		keyPEM:     pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		tlsCertPEM: certPEM,
		sshCert:    ssh.MarshalAuthorizedKey(sshCert),
		caPEM:      trusted.certPEM,
		serial:     serial,
	}, nil
}

func unixOrZero(t time.Time) uint64 {
	if t.Unix() < 0 {
		return 0
	}
	return uint64(t.Unix())
}

// WriteIdentityFile writes a Teleport identity file (the format of
// api/identityfile: private key, SSH certificate, TLS certificate, SSH CA
// known-hosts line, TLS CA) to path with mode 0600. The file is replaced
// atomically (temporary file + rename), so it can rotate a live identity.
func (s *Server) WriteIdentityFile(path string, o IdentityOptions) error {
	id, err := s.newClientIdentity(o)
	if err != nil {
		return err
	}
	knownHosts := fmt.Sprintf("@cert-authority %s,*.%s %s",
		s.cfg.ClusterName, s.cfg.ClusterName, ssh.MarshalAuthorizedKey(s.pki.sshCA.PublicKey()))
	data, err := identityfile.Encode(&identityfile.IdentityFile{
		PrivateKey: id.keyPEM,
		Certs:      identityfile.Certs{SSH: id.sshCert, TLS: id.tlsCertPEM},
		CACerts: identityfile.CACerts{
			SSH: [][]byte{[]byte(knownHosts)},
			TLS: [][]byte{id.caPEM},
		},
	})
	if err != nil {
		return err
	}
	return writeFileAtomic(path, data)
}

// WriteKeyPair writes PEM files usable with client.LoadKeyPair into dir:
// the client certificate, its private key and the CA that signed the server.
func (s *Server) WriteKeyPair(dir string, o IdentityOptions) (certFile, keyFile, caFile string, err error) {
	id, err := s.newClientIdentity(o)
	if err != nil {
		return "", "", "", err
	}
	certFile = filepath.Join(dir, "client.crt")
	keyFile = filepath.Join(dir, "client.key")
	caFile = filepath.Join(dir, "ca.crt")
	for _, f := range []struct {
		path string
		data []byte
	}{{certFile, id.tlsCertPEM}, {keyFile, id.keyPEM}, {caFile, id.caPEM}} {
		if err := writeFileAtomic(f.path, f.data); err != nil {
			return "", "", "", err
		}
	}
	return certFile, keyFile, caFile, nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(identityfile.FilePermissions); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
