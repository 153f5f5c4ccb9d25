package s3store

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Test credentials of the throwaway gateway (loopback only).
const (
	testAccessKey = "mailarctest"
	testSecretKey = "mailarctest-secret-0123456789"
)

// gateway is a running versitygw with a POSIX backend.
type gateway struct {
	endpoint string
	root     string // POSIX root: ROOT/BUCKET/KEY are the object files
	cli      *s3.Client
	names    atomic.Int64
}

// versitygwBinary finds the versitygw binary: $MAILARC_VERSITYGW, PATH, or
// $(go env GOPATH)/bin. Without it the test is skipped, unless
// MAILARC_INTEGRATION=1, when it fails.
func versitygwBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("MAILARC_VERSITYGW"); p != "" {
		return p
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		gopath = strings.TrimSpace(string(out))
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", "versitygw")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	msg := "versitygw not found (set MAILARC_VERSITYGW, put it on PATH, or install it: " +
		"go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)"
	if os.Getenv("MAILARC_INTEGRATION") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// startGateway starts versitygw on a free loopback port with a fresh POSIX
// root and versioning support, and stops it when the test ends.
func startGateway(t testing.TB) *gateway {
	t.Helper()
	bin := versitygwBinary(t)
	var lastErr error
	for range 3 {
		g, err := tryStartGateway(t, bin)
		if err == nil {
			return g
		}
		lastErr = err
	}
	t.Fatalf("starting versitygw: %v", lastErr)
	return nil
}

func tryStartGateway(t testing.TB, bin string) (*gateway, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	root, verDir := t.TempDir(), t.TempDir()
	cmd := exec.Command(bin, "--port", addr, "--quiet", "posix", "--versioning-dir", verDir, root)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+testAccessKey, "ROOT_SECRET_KEY="+testSecretKey)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	endpoint := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	hc := &http.Client{Timeout: time.Second}
	for {
		select {
		case err := <-exited:
			exited <- err
			return nil, fmt.Errorf("versitygw exited: %v; output:\n%s", err, out.String())
		default:
		}
		resp, err := hc.Get(endpoint + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("versitygw not answering on %s after 30s; output:\n%s", addr, out.String())
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
	t.Cleanup(stop)
	cli := s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(testAccessKey, testSecretKey, ""),
	})
	return &gateway{endpoint: endpoint, root: root, cli: cli}, nil
}

// syncBuffer is a bytes.Buffer safe for the child's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// bucket creates a new bucket; lock creates it with Object Lock enabled,
// versioned turns on versioning.
func (g *gateway) bucket(t testing.TB, versioned, lock bool) string {
	t.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("mailarc-test-%d", g.names.Add(1))
	in := &s3.CreateBucketInput{Bucket: &name}
	if lock {
		in.ObjectLockEnabledForBucket = aws.Bool(true)
	}
	if _, err := g.cli.CreateBucket(ctx, in); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	if versioned && !lock {
		_, err := g.cli.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
			Bucket:                  &name,
			VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled},
		})
		if err != nil {
			t.Fatalf("enable versioning on %s: %v", name, err)
		}
	}
	return name
}

// options returns store options for bucket and prefix on this gateway.
func (g *gateway) options(bucket, prefix string) Options {
	return Options{
		Endpoint:    g.endpoint,
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
	return filepath.Join(g.root, bucket, filepath.FromSlash(prefix), "blobs", id[:2], id)
}
