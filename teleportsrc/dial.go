package teleportsrc

import (
	"context"
	"time"

	"github.com/gravitational/teleport/api/client"
	"github.com/gravitational/teleport/api/client/proto"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"google.golang.org/grpc"
)

// Client is the part of the Teleport API the plugin uses, so tests can put a
// fake behind it.
type Client interface {
	Ping(ctx context.Context) (proto.PingResponse, error)
	// SearchEvents is GetUnstructuredEvents, the call behind the api
	// client's SearchUnstructuredEvents, answered as raw pages.
	SearchEvents(ctx context.Context, req *auditlogpb.GetUnstructuredEventsRequest) (Page, error)
	Close() error
}

// Dialer connects to Teleport.
type Dialer func(ctx context.Context, addr string, creds *Credentials, timeout time.Duration) (Client, error)

// Dial connects with the real API client. TLS is always verified: the
// server must present a certificate from the cluster CA in the credentials.
func Dial(ctx context.Context, addr string, creds *Credentials, timeout time.Duration) (Client, error) {
	clt, err := client.New(ctx, client.Config{
		Addrs:       []string{addr},
		Credentials: []client.Credentials{creds.Client()},
		DialTimeout: timeout,
	})
	if err != nil {
		return nil, err
	}
	return apiClient{clt}, nil
}

type apiClient struct{ *client.Client }

// SearchEvents calls the method on the client's own connection, so the
// client's interceptors (error conversion, circuit breaker) still apply;
// only the response decoding differs.
func (c apiClient) SearchEvents(ctx context.Context, req *auditlogpb.GetUnstructuredEventsRequest) (Page, error) {
	var raw []byte
	err := c.GetConnection().Invoke(ctx, auditlogpb.AuditLogService_GetUnstructuredEvents_FullMethodName, req, &raw, grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		return Page{}, err
	}
	return ParsePage(raw)
}
