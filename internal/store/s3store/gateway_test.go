package s3store

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/mailarc/mailarc/internal/testutil/s3test"
)

// Test credentials of the throwaway gateway (loopback only).
const (
	testAccessKey = s3test.AccessKey
	testSecretKey = s3test.SecretKey
)

// gateway is a running versitygw (see package s3test) with the store's
// test helpers.
type gateway struct{ *s3test.Gateway }

// startGateway starts versitygw and stops it when the test ends.
func startGateway(t testing.TB) *gateway { return &gateway{s3test.Start(t)} }

// bucket creates a new bucket; lock creates it with Object Lock enabled,
// versioned turns on versioning.
func (g *gateway) bucket(t testing.TB, versioned, lock bool) string {
	return g.Bucket(t, versioned, lock)
}

// options returns store options for bucket and prefix on this gateway.
func (g *gateway) options(bucket, prefix string) Options {
	return Options{
		Endpoint:    g.Endpoint,
		Bucket:      bucket,
		Prefix:      prefix,
		PathStyle:   true,
		Credentials: credentials.NewStaticCredentialsProvider(testAccessKey, testSecretKey, ""),
		MaxAttempts: 2,
		Logger:      slog.New(slog.DiscardHandler),
	}
}

// open opens a store and closes it when the test ends.
func (g *gateway) open(t testing.TB, opt Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), opt)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// objectFile returns the POSIX file of a blob object.
func (g *gateway) objectFile(bucket, prefix, id string) string {
	return filepath.Join(g.Root, bucket, filepath.FromSlash(prefix), "blobs", id[:2], id)
}
