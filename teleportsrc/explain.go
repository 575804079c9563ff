package teleportsrc

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gravitational/trace"
)

// RoleHint is the Teleport role rule the plugin needs to read audit events.
const RoleHint = "the Teleport role of this identity needs the rule `{resources: [event, session], verbs: [list, read]}` (session only for sessions on; see the README's role)"

// Explain turns an error from connecting to or querying Teleport into one
// line that says what failed and what to fix. credsWhat names the credential
// files ("identity file /path").
//
// client.New tries five ways to connect at once (Auth Service, web proxy,
// TLS routing twice, reverse tunnel) and returns all their errors. Most are
// noise for any one deployment: an Auth Service address fails every proxy
// probe. So the specific causes are looked for first, in the errors of all
// methods but the probes, then in the probes.
func Explain(err error, addr, credsWhat string) string {
	if err == nil {
		return ""
	}
	var main, probes []string
	for _, m := range methodErrors(err) {
		if isProbeNoise(m) {
			probes = append(probes, m)
		} else {
			main = append(main, m)
		}
	}
	if hint := classify(err, strings.Join(main, " | "), addr, credsWhat); hint != "" {
		return hint
	}
	if hint := classify(err, strings.Join(probes, " | "), addr, credsWhat); hint != "" {
		return hint
	}
	return fmt.Sprintf("Teleport at %s: %s", addr, short(trace.UserMessage(err)))
}

func classify(err error, msg, addr, credsWhat string) string {
	low := strings.ToLower(msg)
	has := func(s ...string) bool {
		for _, x := range s {
			if strings.Contains(low, x) {
				return true
			}
		}
		return false
	}
	switch {
	case msg == "":
		return ""
	case trace.IsAccessDenied(err) || has("access denied", "permission denied", "permissiondenied"):
		return fmt.Sprintf("access denied by Teleport at %s: %s", addr, RoleHint)
	case has("tls: expired certificate", "certificate has expired"):
		return fmt.Sprintf("Teleport at %s rejected the certificate in %s as expired: renew it with `tctl auth sign` or check that tbot is renewing it", addr, credsWhat)
	// With TLS 1.3 the server's alert can lose the race against the client's
	// first write, which then sees only a broken pipe.
	case has("tls: bad certificate", "tls: unknown certificate authority", "tls: certificate required", "tls: revoked certificate") ||
		(has("broken pipe", "connection reset by peer") && has("as an auth server")):
		return fmt.Sprintf("Teleport at %s did not accept the certificate in %s: it is expired, revoked or from another cluster; issue a new one with `tctl auth sign` or check that tbot is renewing it", addr, credsWhat)
	case has("webapi/find") && has("x509"):
		return fmt.Sprintf("the Proxy Service at %s presents a certificate this system does not trust: give the host the proxy's CA, or use the Auth Service address (port 3025)", addr)
	case has("x509: certificate signed by unknown authority", "x509: certificate is valid for"):
		return fmt.Sprintf("the server at %s is not trusted by the CA in %s: check that addr is this identity's cluster and that the identity is current", addr, credsWhat)
	case has("no such host"):
		return fmt.Sprintf("cannot resolve the host of addr %s: check the name and DNS", addr)
	case has("connection refused"):
		return fmt.Sprintf("nothing accepts connections at %s: check addr and its port (Proxy Service 443, Auth Service 3025) and that Teleport is running", addr)
	case trace.IsNotImplemented(err) || has("unimplemented"):
		return fmt.Sprintf("Teleport at %s does not implement a call the plugin needs (%s)", addr, short(msg))
	case errors.Is(err, context.DeadlineExceeded) || has("deadline exceeded", "all connection methods failed"):
		return fmt.Sprintf("no answer from Teleport at %s within dial_timeout: check addr, its port, firewalls and proxies; an expired or revoked %s also looks like this", addr, credsWhat)
	case trace.IsConnectionProblem(err) || has("unavailable", "connection reset", "eof"):
		return fmt.Sprintf("lost the connection to Teleport at %s (%s)", addr, short(msg))
	}
	return ""
}

// methodErrors lists the messages of an error, one per connection method
// when it aggregates several.
func methodErrors(err error) []string {
	var agg trace.Aggregate
	if errors.As(err, &agg) {
		var out []string
		for _, e := range agg.Errors() {
			out = append(out, methodErrors(e)...)
		}
		return out
	}
	return []string{err.Error()}
}

// isProbeNoise marks the errors that proxy and tunnel discovery produce
// whenever addr is not that kind of endpoint.
func isProbeNoise(m string) bool {
	return strings.Contains(m, "/webapi/find") || strings.Contains(m, "ssh: handshake failed") ||
		strings.Contains(m, "as a reverse tunnel proxy") || strings.Contains(m, "as a web proxy") ||
		strings.Contains(m, "TLS Routing")
}

// short keeps log lines readable when gRPC nests errors.
func short(msg string) string {
	first, _, _ := strings.Cut(msg, " | ")
	first = strings.Join(strings.Fields(first), " ")
	if len(first) > 300 {
		first = first[:300] + "…"
	}
	return first
}
