package teleportsrc

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gravitational/trace"
)

// RoleHint is the Teleport role rule the plugin needs to read audit events.
const RoleHint = "the Teleport role of this identity needs the rule `{resources: [event], verbs: [list, read]}` (see the README's role)"

// Explain turns an error from connecting to or querying Teleport into one
// line that says what failed and what to fix. credsWhat names the credential
// files ("identity file /path").
func Explain(err error, addr, credsWhat string) string {
	if err == nil {
		return ""
	}
	msg := flatten(err)
	low := strings.ToLower(msg)
	switch {
	case trace.IsAccessDenied(err) || strings.Contains(low, "access denied") || strings.Contains(low, "permissiondenied"):
		return fmt.Sprintf("access denied by Teleport at %s: %s (%s)", addr, RoleHint, short(msg))
	case strings.Contains(low, "certificate signed by unknown authority") || strings.Contains(low, "x509: certificate is valid for"):
		return fmt.Sprintf("the server at %s is not trusted by the CA in %s: check that addr is this identity's cluster and that the identity is current (%s)", addr, credsWhat, short(msg))
	case strings.Contains(low, "tls: expired certificate") || strings.Contains(low, "certificate has expired"):
		return fmt.Sprintf("Teleport at %s rejected the certificate in %s as expired: renew it with `tctl auth sign` or check tbot", addr, credsWhat)
	case strings.Contains(low, "tls: bad certificate") || strings.Contains(low, "tls: unknown certificate authority") || strings.Contains(low, "tls: certificate required"):
		return fmt.Sprintf("Teleport at %s rejected the certificate in %s: it is expired, revoked or from another cluster; issue a new one with `tctl auth sign` or check tbot (%s)", addr, credsWhat, short(msg))
	case strings.Contains(low, "no such host"):
		return fmt.Sprintf("cannot resolve the host of addr %s: check the name and DNS", addr)
	case strings.Contains(low, "connection refused"):
		return fmt.Sprintf("nothing accepts connections at %s: check addr and its port (Proxy Service 443, Auth Service 3025) and that Teleport is running", addr)
	case trace.IsNotImplemented(err) || strings.Contains(low, "unimplemented"):
		return fmt.Sprintf("Teleport at %s does not implement a call the plugin needs: %s", addr, short(msg))
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(low, "deadline exceeded") || strings.Contains(low, "all connection methods failed"):
		return fmt.Sprintf("no answer from Teleport at %s within dial_timeout: check addr, its port, firewalls and proxies; an expired or revoked %s also looks like this (%s)", addr, credsWhat, short(msg))
	case trace.IsConnectionProblem(err) || strings.Contains(low, "unavailable") || strings.Contains(low, "connection reset") || strings.Contains(low, "eof"):
		return fmt.Sprintf("lost the connection to Teleport at %s: %s", addr, short(msg))
	}
	return fmt.Sprintf("Teleport at %s: %s", addr, short(msg))
}

// flatten gathers the messages of an error chain, including aggregates.
func flatten(err error) string {
	var parts []string
	var agg trace.Aggregate
	if errors.As(err, &agg) {
		for _, e := range agg.Errors() {
			parts = append(parts, flatten(e))
		}
	}
	parts = append(parts, trace.UserMessage(err), err.Error())
	return strings.Join(parts, " | ")
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
