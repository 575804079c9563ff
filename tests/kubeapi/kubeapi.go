// Package kubeapi starts a real Kubernetes API server and etcd on loopback
// for the leader-election tests: the binaries `make kube` builds from
// tests/realkube into build/, TLS with a throwaway CA, RBAC on, an admin
// token and a token for a user that holds only the Role the manifests ship.
// Each candidate reaches the API server through a Proxy of its own, which a
// test can cut to take that candidate off the API server.
package kubeapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	authorizationv1 "k8s.io/api/authorization/v1"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	sigyaml "sigs.k8s.io/yaml"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/flbhost"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/testenv"
)

// Tokens of the two users.
const (
	AdminToken  = "admin-token-for-tests"
	PluginToken = "plugin-token-for-tests"
	PluginUser  = "fluent-bit-teleport"
)

// Cluster is a running API server.
type Cluster struct {
	URL   string // https://127.0.0.1:port
	CA    []byte // PEM
	Admin kubernetes.Interface
	dir   string
}

// Binaries returns the paths of kube-apiserver and etcd in build/, failing
// the test with what to run when they are missing.
func Binaries(t testing.TB) (apiserver, etcd string) {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	apiserver, etcd = filepath.Join(root, "build", "kube-apiserver"), filepath.Join(root, "build", "etcd")
	for _, p := range []string{apiserver, etcd} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s is missing: run `make kube` first (it builds kube-apiserver v1.37.2 and etcd v3.7.0 from tests/realkube; about 16 CPU-minutes cold, seconds when cached); `make test` does", p)
		}
	}
	return apiserver, etcd
}

// Start starts etcd and the API server, stopped when the test ends, and
// creates namespace ns.
func Start(t testing.TB, ns string) *Cluster {
	t.Helper()
	apiserverBin, etcdBin := Binaries(t)
	dir, err := os.MkdirTemp("", "kubeapi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c := &Cluster{dir: dir}

	client, peer := testenv.FreeAddr(t), testenv.FreeAddr(t)
	c.start(t, "etcd", etcdBin, "--data-dir", filepath.Join(dir, "etcd"), "--name", "test",
		"--listen-client-urls", "http://"+client, "--advertise-client-urls", "http://"+client,
		"--listen-peer-urls", "http://"+peer, "--initial-advertise-peer-urls", "http://"+peer,
		"--initial-cluster", "test=http://"+peer, "--listen-metrics-urls", "", "--log-level", "warn")
	testenv.Eventually(t, 30*time.Second, "etcd healthy", func() bool {
		resp, err := http.Get("http://" + client + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	caCert, caKey := newCA(t)
	c.CA = caCert.pem
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	serving := newLeaf(t, caCert, caKey)
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	saPriv := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)})
	saPubDER, _ := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	secure := testenv.FreeAddr(t)
	_, port, _ := net.SplitHostPort(secure)
	c.URL = "https://" + secure
	c.start(t, "kube-apiserver", apiserverBin,
		"--etcd-servers", "http://"+client, "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--secure-port", port, "--tls-cert-file", write("serving.crt", serving.pem), "--tls-private-key-file", write("serving.key", serving.keyPEM),
		"--client-ca-file", write("ca.crt", caCert.pem),
		"--token-auth-file", write("tokens.csv", []byte(AdminToken+",admin,uid-admin,system:masters\n"+PluginToken+","+PluginUser+",uid-plugin,\n")),
		"--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", write("sa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPubDER})),
		"--service-account-signing-key-file", write("sa.key", saPriv),
		"--service-cluster-ip-range", "10.96.0.0/24", "--endpoint-reconciler-type", "none", "--cert-dir", filepath.Join(dir, "certs"))

	c.Admin = c.Client(t, c.URL, AdminToken)
	began := time.Now()
	testenv.Eventually(t, 90*time.Second, "kube-apiserver ready", func() bool {
		body, err := c.Admin.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(context.Background())
		return err == nil && string(body) == "ok"
	})
	t.Logf("kube-apiserver ready in %s", time.Since(began).Round(100*time.Millisecond))
	_, err = c.Admin.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace %s: %v", ns, err)
	}
	return c
}

// start runs one server process, killed when the test ends.
func (c *Cluster) start(t testing.TB, name, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out := &flbhost.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("%s output (tail):\n%s", name, tail(out.String(), 3000))
		}
	})
}

// Client is a clientset for url with a bearer token.
func (c *Cluster) Client(t testing.TB, url, token string) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: url, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: c.CA}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// Kubeconfig writes a kubeconfig for url (the API server or a Proxy) with
// a bearer token and namespace, and returns its path.
func (c *Cluster) Kubeconfig(t testing.TB, url, token, ns string) string {
	t.Helper()
	f, err := os.CreateTemp(c.dir, "kubeconfig")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: test
  user:
    token: %s
contexts:
- name: test
  context: {cluster: test, user: test, namespace: %s}
current-context: test
`, url, b64(c.CA), token, ns)
	return f.Name()
}

// GrantManifestRole creates, in ns, the Role of a manifest file (YAML
// documents; the first Role found) and binds it to the plugin user only:
// whatever the tests do with PluginToken, that Role allowed.
func (c *Cluster) GrantManifestRole(t testing.TB, manifest, ns string) *rbacv1.Role {
	t.Helper()
	raw, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	var role *rbacv1.Role
	for _, doc := range strings.Split(string(raw), "\n---") {
		var r rbacv1.Role
		if err := sigyaml.UnmarshalStrict([]byte(doc), &r); err == nil && r.Kind == "Role" {
			role = &r
			break
		}
	}
	if role == nil {
		t.Fatalf("%s holds no Role", manifest)
	}
	role.Namespace, role.ResourceVersion = ns, ""
	ctx := context.Background()
	if _, err := c.Admin.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the manifest's Role: %v", err)
	}
	_, err = c.Admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: PluginUser}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("binding the manifest's Role: %v", err)
	}
	c.waitGranted(t, role, ns)
	return role
}

// waitGranted polls until the API server's RBAC authorizer allows every
// rule of role to PluginUser: it reads Roles and RoleBindings from informer
// caches, so a new binding takes effect a moment after it is created (a
// first request could be forbidden).
func (c *Cluster) waitGranted(t testing.TB, role *rbacv1.Role, ns string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, rule := range role.Rules {
		for _, group := range rule.APIGroups {
			for _, res := range rule.Resources {
				for _, verb := range rule.Verbs {
					attrs := &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Group: group, Resource: res}
					for {
						sar, err := c.Admin.AuthorizationV1().SubjectAccessReviews().Create(context.Background(),
							&authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
								User: PluginUser, ResourceAttributes: attrs}}, metav1.CreateOptions{})
						if err == nil && sar.Status.Allowed {
							break
						}
						if time.Now().After(deadline) {
							t.Fatalf("the manifest's Role was not in effect for %s %s/%s after 30 s (err %v)", verb, group, res, err)
						}
						time.Sleep(50 * time.Millisecond)
					}
				}
			}
		}
	}
}

// Proxy forwards TCP connections to the API server until it is cut: then
// it drops every connection and holds new ones open without an answer, as
// a network partition does.
type Proxy struct {
	URL    string
	l      net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]bool
}

// Proxy starts a proxy to the API server, closed when the test ends.
func (c *Cluster) Proxy(t testing.TB) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{URL: "https://" + l.Addr().String(), l: l, target: strings.TrimPrefix(c.URL, "https://"), conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() { l.Close(); p.Cut() })
	return p
}

func (p *Proxy) serve() {
	for {
		in, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns[in] = true
		cut := p.cut
		p.mu.Unlock()
		if cut {
			continue // held open, never answered
		}
		go p.forward(in)
	}
}

func (p *Proxy) forward(in net.Conn) {
	out, err := net.Dial("tcp", p.target)
	if err != nil {
		in.Close()
		return
	}
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		out.Close()
		return
	}
	p.conns[out] = true
	p.mu.Unlock()
	go func() { _, _ = io.Copy(out, in); out.Close() }()
	_, _ = io.Copy(in, out)
	in.Close()
}

// Cut takes the candidate off the API server.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset, not a goodbye
		}
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

// Restore lets connections through again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	for c := range p.conns {
		c.Close() // the ones held while cut
	}
	p.conns = map[net.Conn]bool{}
}

type pemPair struct {
	cert   *x509.Certificate
	pem    []byte
	keyPEM []byte
}

func newCA(t testing.TB) (*pemPair, *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubeapi test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &pemPair{cert: cert, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, key
}

func newLeaf(t testing.TB, ca *pemPair, caKey *ecdsa.PrivateKey) *pemPair {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return &pemPair{pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
