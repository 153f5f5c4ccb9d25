// Package s3test starts a throwaway S3 server for tests: Versity's
// versitygw with its POSIX backend (installed by .ci/run with
// `go install github.com/versity/versitygw/cmd/versitygw@v1.8.0`), on a
// free loopback port, with a fresh root directory, stopped when the test
// ends. Without the binary the test is skipped with a message saying how to
// install it, or fails under MAILARC_INTEGRATION=1.
//
// The POSIX root keeps ROOT/BUCKET/KEY as plain files, so tests can look at
// (or damage) what the store wrote.
package s3test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/mailarc/mailarc/internal/testutil"
)

// Credentials of every test gateway (loopback only).
const (
	AccessKey = "mailarctest"
	SecretKey = "mailarctest-secret-0123456789"
)

// Gateway is a running versitygw.
type Gateway struct {
	Endpoint string     // http://127.0.0.1:PORT
	Root     string     // POSIX root: Root/BUCKET/KEY are the object files
	Client   *s3.Client // path-style client with the test credentials
	names    atomic.Int64
}

// Binary finds versitygw: $MAILARC_VERSITYGW, PATH, or $(go env GOPATH)/bin.
// Without it the test is skipped, unless MAILARC_INTEGRATION=1 (it fails).
func Binary(t testing.TB) string {
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

// Start starts a gateway with versioning support and stops it when the test
// ends.
func Start(t testing.TB) *Gateway {
	t.Helper()
	bin := Binary(t)
	var lastErr error
	for range 3 {
		g, err := tryStart(t, bin)
		if err == nil {
			return g
		}
		lastErr = err
	}
	t.Fatalf("starting versitygw: %v", lastErr)
	return nil
}

func tryStart(t testing.TB, bin string) (*Gateway, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	root, verDir := t.TempDir(), t.TempDir()
	cmd := exec.Command(bin, "--port", addr, "--quiet", "posix", "--versioning-dir", verDir, root)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+AccessKey, "ROOT_SECRET_KEY="+SecretKey)
	var out testutil.SyncBuffer
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
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	})
	return &Gateway{Endpoint: endpoint, Root: root, Client: cli}, nil
}

// Bucket creates a new bucket; lock creates it with Object Lock enabled,
// versioned turns on versioning.
func (g *Gateway) Bucket(t testing.TB, versioned, lock bool) string {
	t.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("mailarc-test-%d", g.names.Add(1))
	in := &s3.CreateBucketInput{Bucket: &name}
	if lock {
		in.ObjectLockEnabledForBucket = aws.Bool(true)
	}
	if _, err := g.Client.CreateBucket(ctx, in); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	if versioned && !lock {
		_, err := g.Client.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
			Bucket:                  &name,
			VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled},
		})
		if err != nil {
			t.Fatalf("enable versioning on %s: %v", name, err)
		}
	}
	return name
}

// CredentialsFile writes an AWS shared credentials file with the test
// credentials (the form `[store] credentials_file` takes) and returns its path.
func (g *Gateway) CredentialsFile(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "s3-credentials")
	body := fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", AccessKey, SecretKey)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// StoreTOML returns the `[store]` section of a mailarc config using bucket
// on this gateway.
func (g *Gateway) StoreTOML(t testing.TB, bucket, prefix string) string {
	t.Helper()
	return fmt.Sprintf("[store]\nbackend = \"s3\"\nendpoint = %q\nregion = \"us-east-1\"\nbucket = %q\nprefix = %q\npath_style = true\ncredentials_file = %q\n",
		g.Endpoint, bucket, prefix, g.CredentialsFile(t))
}
