package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/governance"
	"github.com/mailarc/mailarc/internal/testutil"
	"github.com/mailarc/mailarc/internal/testutil/s3test"
)

// TestWORMLoopOnObjectLockBucket: a serving node on an S3 bucket with
// Object Lock runs the WORM sync by itself: after a retention policy is
// set, the object of a matching message gets its retain-until date in the
// bucket, and /api/v1/status reports the sync.
func TestWORMLoopOnObjectLockBucket(t *testing.T) {
	g := s3test.Start(t)
	bucket := g.Bucket(t, false, true)
	cfg := testConfig(t.TempDir())
	cfg.Store.Backend = "s3"
	cfg.Store.Endpoint = g.Endpoint
	cfg.Store.Bucket = bucket
	cfg.Store.Prefix = "w/"
	cfg.Store.PathStyle = true
	cfg.Store.CredentialsFile = g.CredentialsFile(t)
	nd := startConfig(t, cfg)
	ctx := context.Background()
	res, err := nd.n.Archive.Ingest(ctx, []byte("From: legal@corp.example\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\nSubject: contract\r\n\r\nbody\r\n"), archive.Origin{Source: "api"})
	if err != nil {
		t.Fatal(err)
	}
	// Policies are queries on the index: set it once the message is indexed,
	// so the change's wake-up (not the 30 s interval) applies it.
	testutil.Eventually(t, 30*time.Second, "the message to be indexed", func() bool {
		_, b := nd.admin(t, "GET", "/api/v1/status", nil)
		return strings.Contains(string(b), `"indexed":1`)
	})
	gov, _, err := nd.n.Governance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gov.SetRetention(ctx, "admin", governance.Retention{Default: "forever",
		Policies: []governance.Policy{{Name: "legal", Query: "from:legal@corp.example", Keep: "7y"}}}); err != nil {
		t.Fatal(err)
	}
	key := "w/blobs/" + res.ID[:2] + "/" + res.ID
	var until time.Time
	testutil.Eventually(t, 90*time.Second, "the WORM loop to set the object's retain-until", func() bool {
		r, err := g.Client.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: &bucket, Key: &key})
		if err != nil || r.Retention == nil {
			return false
		}
		until = aws.ToTime(r.Retention.RetainUntilDate)
		return true
	})
	want := time.Date(2033, 3, 2, 10, 0, 0, 0, time.UTC)
	if d := until.Sub(want); d < -48*time.Hour || d > 48*time.Hour {
		t.Errorf("retain-until %s, want about %s (message date + 7y)", until, want)
	}
	c, b := nd.admin(t, "GET", "/api/v1/status", nil)
	if c != 200 || !strings.Contains(string(b), `"worm"`) {
		t.Errorf("status without the WORM block: %d %s", c, b)
	}
}
