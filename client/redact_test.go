package client_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/livekv/livekv/client"
	"github.com/stretchr/testify/require"
)

// TestDial_RedactsCredentials: a failed dial's error, which quotes the
// URL, does not show the token that the URL carries, nor the API key,
// which goes in a header.
func TestDial_RedactsCredentials(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now

	for _, o := range []*client.Options{{APIKey: "s3cret key/+"}, {Token: "tok.s3cret"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := client.Dial(ctx, "http://"+addr+"/kv", o)
		cancel()
		require.Error(t, err)
		require.NotContains(t, err.Error(), "s3cret")
		if o.Token != "" { // an API key goes in a header, not in the URL the error quotes
			require.Contains(t, err.Error(), "REDACTED", "the error quoted the URL: %v", err)
		}
		var ue *url.Error
		require.True(t, errors.As(err, &ue), "the cause is still there: %v", err)
	}
}
