package governance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/audit"
	"github.com/mailarc/mailarc/internal/catalog/catalogtest"
	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/store"
	"github.com/mailarc/mailarc/internal/store/s3store"
	"github.com/mailarc/mailarc/internal/testutil"
	"github.com/mailarc/mailarc/internal/testutil/s3test"
)

// wormEnv is an archive on an S3 bucket with Object Lock (versitygw),
// governed on the real clock (the object store checks retain-until dates
// against its own).
type wormEnv struct {
	t      *testing.T
	g      *s3test.Gateway
	bucket string
	st     *s3store.Store
	arch   *archive.Archive
	ixr    *index.Indexer
	gov    *Service
}

const wormPrefix = "p/"

func newWORMEnv(t *testing.T, be catalogtest.Backend) *wormEnv {
	t.Helper()
	testutil.Require(t, index.FTS5Compiled(), "this test binary was built without -tags sqlite_fts5")
	ctx := context.Background()
	e := &wormEnv{t: t, g: s3test.Start(t)}
	e.bucket = e.g.Bucket(t, false, true)
	var err error
	e.st, err = s3store.Open(ctx, s3store.Options{
		Endpoint: e.g.Endpoint, Bucket: e.bucket, Prefix: wormPrefix, PathStyle: true, MaxAttempts: 2,
		Credentials: credentials.NewStaticCredentialsProvider(s3test.AccessKey, s3test.SecretKey, ""),
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.st.Close() })
	if !e.st.ObjectLock() {
		t.Skip("versitygw did not report S3 Object Lock on a bucket created with it: this server does not support Object Lock retention/legal holds; WORM tests skipped")
	}
	cat := be.New(t)
	e.arch = archive.New(cat, e.st, archive.Options{})
	idx, err := index.OpenSQLite(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	e.ixr = index.NewIndexer(idx, feed{e.arch}, index.IndexerOptions{})
	aud, err := audit.Open(ctx, cat, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if e.gov, err = New(ctx, cat, idx, e.st, Options{Audit: aud, BatchSize: 2, Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		for _, err := range []error{e.arch.Close(ctx), aud.Close(ctx), idx.Close()} {
			if err != nil {
				t.Error(err)
			}
		}
	})
	return e
}

// add ingests a message with the given date and indexes it.
func (e *wormEnv) add(from, subject string, date time.Time) string {
	e.t.Helper()
	raw := fmt.Sprintf("From: %s\r\nTo: bob@corp.example\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s.%d@x>\r\n\r\nbody of %s\r\n",
		from, subject, date.Format(time.RFC1123Z), subject, date.Unix(), subject)
	r, err := e.arch.Ingest(context.Background(), []byte(raw), archive.Origin{Source: "api"})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.ixr.CatchUp(context.Background(), nil); err != nil {
		e.t.Fatal(err)
	}
	return r.ID
}

func (e *wormEnv) sync() WORMResult {
	e.t.Helper()
	res, err := e.gov.SyncWORM(context.Background())
	if err != nil {
		e.t.Fatalf("SyncWORM: %v", err)
	}
	return res
}

func (e *wormEnv) key(id string) *string {
	return aws.String(wormPrefix + "blobs/" + id[:2] + "/" + id)
}

func apiErrCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// lock reads an object's Object Lock state with a plain S3 client.
func (e *wormEnv) lock(id string) (mode string, until time.Time, hold bool) {
	e.t.Helper()
	ctx := context.Background()
	r, err := e.g.Client.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: &e.bucket, Key: e.key(id)})
	switch {
	case err == nil && r.Retention != nil:
		mode, until = string(r.Retention.Mode), aws.ToTime(r.Retention.RetainUntilDate)
	case err != nil && apiErrCode(err) != "NoSuchObjectLockConfiguration":
		e.t.Fatalf("GetObjectRetention %s: %v", id, err)
	}
	h, err := e.g.Client.GetObjectLegalHold(ctx, &s3.GetObjectLegalHoldInput{Bucket: &e.bucket, Key: e.key(id)})
	switch {
	case err == nil && h.LegalHold != nil:
		hold = h.LegalHold.Status == s3types.ObjectLockLegalHoldStatusOn
	case err != nil && apiErrCode(err) != "NoSuchObjectLockConfiguration":
		e.t.Fatalf("GetObjectLegalHold %s: %v", id, err)
	}
	return mode, until, hold
}

func (e *wormEnv) present(id string) bool {
	e.t.Helper()
	ok, err := e.st.Has(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return ok
}

func (e *wormEnv) run(want int64) RunResult {
	e.t.Helper()
	ctx := context.Background()
	dry, err := e.gov.DryRun(ctx, "admin")
	if err != nil {
		e.t.Fatal(err)
	}
	if dry.WouldPurge != want {
		e.t.Fatalf("dry run: would purge %d, want %d (%+v)", dry.WouldPurge, want, dry)
	}
	res, err := e.gov.Run(ctx, "admin", want)
	if err != nil {
		e.t.Fatalf("Run(confirm=%d): %v", want, err)
	}
	return res
}

func TestWORM(t *testing.T) { catalogtest.ForEach(t, &pg, testWORM) }

func testWORM(t *testing.T, be catalogtest.Backend) {
	e := newWORMEnv(t, be)
	ctx := context.Background()
	now := time.Now().Truncate(time.Second)
	recent := now.AddDate(0, 0, -10)
	old := now.AddDate(0, 0, -400)

	legal := e.add("legal@corp.example", "contract", recent)  // 7y policy
	plain := e.add("bob@corp.example", "lunch", recent)       // default: forever
	expired := e.add("spam@junk.example", "temp offer", old)  // temp 30d: expired
	held := e.add("ceo@corp.example", "temp board memo", old) // expired, but under a hold
	locked := e.add("spam@junk.example", "temp locked", old)  // expired; locked by someone else
	// Expires (and its retain-until passes) 20 s from now: steps 1-5 must
	// be done by then, with room for a loaded machine.
	soonDate := now.AddDate(0, 0, -30).Add(20 * time.Second)
	soon := e.add("spam@junk.example", "temp soon", soonDate)

	if _, err := e.gov.SetRetention(ctx, "admin", Retention{Default: "forever", Policies: []Policy{
		{Name: "legal", Query: "from:legal@corp.example", Keep: "7y"},
		{Name: "temp", Query: "subject:temp", Keep: "30d"},
	}}); err != nil {
		t.Fatal(err)
	}
	res := e.sync()
	if !res.FullPass || res.Retained != 2 {
		t.Fatalf("first sync = %+v, want a full pass setting 2 retain-until dates", res)
	}

	// 1. Retain-until dates from the policies.
	mode, until, hold := e.lock(legal)
	if want := recent.AddDate(7, 0, 0); mode != "GOVERNANCE" || !until.Equal(want) || hold {
		t.Fatalf("legal: mode %q until %v hold %v; want GOVERNANCE until %v, no hold", mode, until, hold, want)
	}
	if mode, until, _ := e.lock(soon); mode != "GOVERNANCE" || !until.Equal(soonDate.AddDate(0, 0, 30)) {
		t.Fatalf("soon: mode %q until %v; want GOVERNANCE until %v", mode, until, soonDate.AddDate(0, 0, 30))
	}
	for name, id := range map[string]string{"plain (kept forever)": plain, "expired": expired, "held": held} {
		if mode, until, hold := e.lock(id); mode != "" || !until.IsZero() || hold {
			t.Fatalf("%s: mode %q until %v hold %v; want no lock", name, mode, until, hold)
		}
	}
	if res := e.sync(); res != (WORMResult{}) {
		t.Fatalf("second sync did something: %+v", res)
	}

	// 2. A hold places S3 legal holds, on existing and on new messages.
	h, err := e.gov.CreateHold(ctx, "admin", HoldSpec{Name: "case 1", Query: "from:ceo@corp.example"})
	if err != nil {
		t.Fatal(err)
	}
	if res := e.sync(); res.HoldsPlaced != 1 || !res.FullPass {
		t.Fatalf("sync after hold = %+v, want one legal hold placed in a full pass", res)
	}
	if _, _, hold := e.lock(held); !hold {
		t.Fatal("held message: no legal hold on its object")
	}
	if _, _, hold := e.lock(legal); hold {
		t.Fatal("message outside the hold got a legal hold")
	}
	later := e.add("ceo@corp.example", "new memo", now.Add(-time.Hour))
	if res := e.sync(); res.HoldsPlaced != 1 || res.FullPass {
		t.Fatalf("sync after a new held message = %+v, want one legal hold placed incrementally", res)
	}
	if _, _, hold := e.lock(later); !hold {
		t.Fatal("new message matching the hold: no legal hold")
	}
	st, err := e.gov.WORMStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Enabled || st.LagMessages != 0 || st.Resync != nil || st.HeldObjects != 2 || st.RetainedObjects != 2 {
		t.Fatalf("status = %+v, want enabled, in sync, 2 held and 2 retained objects", st)
	}

	// 3. Someone else locks one object; the purge deletes the expired,
	// unheld objects, keeps the held one, and retries the locked one.
	extUntil := time.Now().Add(8 * time.Second)
	if _, err := e.g.Client.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: &e.bucket, Key: e.key(locked),
		Retention: &s3types.ObjectLockRetention{Mode: s3types.ObjectLockRetentionModeGovernance, RetainUntilDate: &extUntil}}); err != nil {
		t.Fatal(err)
	}
	if r := e.run(2); r.Purged != 2 || r.Held != 1 {
		t.Fatalf("run = %+v, want 2 purged, 1 held", r)
	}
	if e.present(expired) {
		t.Fatal("purged expired message: object still in the bucket")
	}
	if !e.present(locked) {
		t.Fatal("object locked by someone else vanished")
	}
	if st, _ := e.gov.WORMStatus(ctx); st.PendingDeletes != 1 {
		t.Fatalf("pending deletes = %d, want 1", st.PendingDeletes)
	}
	if err := e.st.Delete(ctx, []string{held}); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("direct delete of a held object = %v, want ErrLocked", err)
	}
	if _, err := e.arch.Get(ctx, held); err != nil {
		t.Fatalf("held message: %v", err)
	}

	// 4. Releasing the hold lifts the legal hold; then it can be purged.
	if err := e.gov.ReleaseHold(ctx, "admin", h.ID); err != nil {
		t.Fatal(err)
	}
	if res := e.sync(); res.HoldsLifted != 2 {
		t.Fatalf("sync after release = %+v, want 2 legal holds lifted", res)
	}
	if _, _, hold := e.lock(held); hold {
		t.Fatal("legal hold still on after the hold was released")
	}
	if r := e.run(1); r.Purged != 1 {
		t.Fatalf("run after release = %+v", r)
	}
	if e.present(held) {
		t.Fatal("released and purged: object still in the bucket")
	}

	// 5. Shortening a policy does not shorten WORM dates already set: the
	// message expires under the new policy but stays locked.
	if _, err := e.gov.SetRetention(ctx, "admin", Retention{Default: "forever", Policies: []Policy{
		{Name: "legal", Query: "from:legal@corp.example", Keep: "1d"},
		{Name: "temp", Query: "subject:temp", Keep: "30d"},
	}}); err != nil {
		t.Fatal(err)
	}
	if res := e.sync(); res.Retained != 0 || !res.FullPass {
		t.Fatalf("sync after shortening = %+v, want a full pass extending nothing", res)
	}
	if _, until, _ := e.lock(legal); !until.Equal(recent.AddDate(7, 0, 0)) {
		t.Fatalf("legal retain-until after shortening the policy = %v, want unchanged %v", until, recent.AddDate(7, 0, 0))
	}
	dry, err := e.gov.DryRun(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if dry.Locked != 1 || dry.WouldPurge != 0 {
		t.Fatalf("dry run after shortening = %+v, want 1 locked, none to purge", dry)
	}
	if err := e.st.Delete(ctx, []string{legal}); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("direct delete of a retained object = %v, want ErrLocked", err)
	}

	// 6. Once the retain-until dates pass, the retried delete and the
	// expiring message go too.
	deadline := time.Now().Add(30 * time.Second)
	for {
		dry, err := e.gov.DryRun(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if dry.WouldPurge == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("soon never became purgeable: %+v", dry)
		}
		time.Sleep(200 * time.Millisecond) // polling the clock past a retain-until date
	}
	if r := e.run(1); r.Purged != 1 {
		t.Fatalf("run after the retain-until date = %+v", r)
	}
	if e.present(soon) {
		t.Fatal("soon: object still in the bucket after its purge")
	}
	for {
		e.sync()
		st, err := e.gov.WORMStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.PendingDeletes == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("locked object never deleted: %+v", st)
		}
		time.Sleep(200 * time.Millisecond) // polling the clock past a retain-until date
	}
	if e.present(locked) {
		t.Fatal("retried delete: object still in the bucket")
	}
	if !e.present(legal) || !e.present(plain) || !e.present(later) {
		t.Fatal("a kept message's object is gone")
	}
}

// TestWORMLocalStore: without Object Lock nothing changes.
func TestWORMLocalStore(t *testing.T) {
	e := newEnv(t, catalogtest.SQLiteBackend())
	id := e.add("a@x.example", "hello", 1)
	e.index()
	if e.gov.WORMEnabled() {
		t.Fatal("WORM enabled on a local store")
	}
	if res, err := e.gov.SyncWORM(context.Background()); err != nil || res != (WORMResult{}) {
		t.Fatalf("SyncWORM on a local store = %+v, %v", res, err)
	}
	st, err := e.gov.WORMStatus(context.Background())
	if err != nil || st.Enabled || st.PendingDeletes != 0 {
		t.Fatalf("WORMStatus = %+v, %v", st, err)
	}
	if !e.exists(id) {
		t.Fatal("message gone")
	}
}
