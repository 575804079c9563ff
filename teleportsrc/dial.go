package teleportsrc

import (
	"context"
	"time"

	"github.com/gravitational/teleport/api/client"
	"github.com/gravitational/teleport/api/client/proto"
	auditlogpb "github.com/gravitational/teleport/api/gen/proto/go/teleport/auditlog/v1"
	"github.com/gravitational/teleport/api/types"
)

// Client is the part of the Teleport API client the plugin uses, so tests
// can put a fake behind it.
type Client interface {
	Ping(ctx context.Context) (proto.PingResponse, error)
	SearchUnstructuredEvents(ctx context.Context, fromUTC, toUTC time.Time, namespace string, eventTypes []string, limit int, order types.EventOrder, startKey string) ([]*auditlogpb.EventUnstructured, string, error)
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
	return clt, nil
}
