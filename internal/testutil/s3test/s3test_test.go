package s3test_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mailarc/mailarc/internal/testutil/s3test"
)

func TestGateway(t *testing.T) {
	g := s3test.Start(t)
	b := g.Bucket(t, true, false)
	key := "k"
	if _, err := g.Client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &b, Key: &key, Body: strings.NewReader("v")}); err != nil {
		t.Fatalf("put: %v", err)
	}
	if toml := g.StoreTOML(t, b, "p/"); !strings.Contains(toml, `bucket = "`+b+`"`) || !strings.Contains(toml, "credentials_file") {
		t.Fatalf("StoreTOML: %s", toml)
	}
}
