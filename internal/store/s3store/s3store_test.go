package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mailarc/mailarc/internal/store"
	"github.com/mailarc/mailarc/internal/store/storetest"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, store.KeySize) }

func TestContract(t *testing.T) {
	g := startGateway(t)
	bucket := g.bucket(t, false, false)
	n := 0
	storetest.Run(t, func(t *testing.T) store.Store {
		n++
		s, err := Open(context.Background(), g.options(bucket, fmt.Sprintf("contract-%d", n)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// The contract again with encryption, in a versioned bucket (deletes must
// remove every version).
func TestContractEncryptedVersioned(t *testing.T) {
	g := startGateway(t)
	bucket := g.bucket(t, true, false)
	n := 0
	storetest.Run(t, func(t *testing.T) store.Store {
		n++
		opt := g.options(bucket, fmt.Sprintf("enc-%d/", n))
		opt.Key = testKey(7)
		s, err := Open(context.Background(), opt)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
	// Nothing of a deleted blob may remain in any version.
	out, err := g.Client.ListObjectVersions(context.Background(), &s3.ListObjectVersionsInput{Bucket: &bucket})
	if err != nil {
		t.Fatal(err)
	}
	live := map[string]bool{}
	lo, err := g.Client.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &bucket})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range lo.Contents {
		live[aws.ToString(o.Key)] = true
	}
	for _, v := range out.Versions {
		if !live[aws.ToString(v.Key)] {
			t.Errorf("version %s of deleted key %s remains", aws.ToString(v.VersionId), aws.ToString(v.Key))
		}
	}
	if len(out.DeleteMarkers) != 0 {
		t.Errorf("%d delete markers remain, want 0", len(out.DeleteMarkers))
	}
}

// filesContaining returns the files under root whose bytes contain needle.
func filesContaining(t *testing.T, root string, needle []byte) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, needle) {
			hits = append(hits, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

func TestEncryptionAtRest(t *testing.T) {
	g := startGateway(t)
	bucket := g.bucket(t, false, false)
	ctx := context.Background()
	secret := []byte("Subject: merger plans\r\n\r\nThe password is CORRECT-HORSE-BATTERY-STAPLE.\r\n")

	// Control: without a key and without compression the text is visible,
	// so the check below can fail.
	plainOpt := g.options(bucket, "plain")
	plainOpt.NoCompress = true
	plain := g.open(t, plainOpt)
	if err := plain.Put(ctx, []store.Blob{store.NewBlob(secret)}); err != nil {
		t.Fatal(err)
	}
	if hits := filesContaining(t, filepath.Join(g.Root, bucket, "plain"), []byte("CORRECT-HORSE")); len(hits) == 0 {
		t.Fatal("control: plaintext not found in the unencrypted store's files")
	}

	opt := g.options(bucket, "enc")
	opt.Key = testKey(1)
	opt.NoCompress = true // so that only encryption can hide the text
	s := g.open(t, opt)
	b := store.NewBlob(secret)
	if err := s.Put(ctx, []store.Blob{b}); err != nil {
		t.Fatal(err)
	}
	if hits := filesContaining(t, filepath.Join(g.Root, bucket, "enc"), []byte("CORRECT-HORSE")); len(hits) != 0 {
		t.Fatalf("plaintext visible in %v", hits)
	}
	got, err := s.Get(ctx, b.ID)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Get = %q, %v", got, err)
	}
}

func TestKeyCheck(t *testing.T) {
	g := startGateway(t)
	bucket := g.bucket(t, false, false)
	ctx := context.Background()
	opt := g.options(bucket, "k")
	opt.Key = testKey(1)
	s, err := Open(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	b := store.NewBlob([]byte("keyed"))
	if err := s.Put(ctx, []store.Blob{b}); err != nil {
		t.Fatal(err)
	}
	inst := s.InstanceID()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, b.ID); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Get after Close = %v, want ErrClosed", err)
	}

	wrong := opt
	wrong.Key = testKey(2)
	if s, err := Open(ctx, wrong); err == nil {
		s.Close()
		t.Fatal("Open with the wrong key succeeded")
	} else if !strings.Contains(err.Error(), "not the key") {
		t.Fatalf("wrong key: unexpected error %v", err)
	}
	none := opt
	none.Key = nil
	if s, err := Open(ctx, none); err == nil {
		s.Close()
		t.Fatal("Open of an encrypted store without a key succeeded")
	}
	s2 := g.open(t, opt)
	if s2.InstanceID() != inst {
		t.Fatalf("instance id changed: %s -> %s", inst, s2.InstanceID())
	}
	if got, err := s2.Get(ctx, b.ID); err != nil || string(got) != "keyed" {
		t.Fatalf("Get after reopen = %q, %v", got, err)
	}

	// An unencrypted store refuses a key.
	plainOpt := g.options(bucket, "p")
	g.open(t, plainOpt)
	keyed := plainOpt
	keyed.Key = testKey(3)
	if s, err := Open(ctx, keyed); err == nil {
		s.Close()
		t.Fatal("Open of an unencrypted store with a key succeeded")
	}

	// Blobs without store.json: refuse to guess.
	orphan := "o/blobs/" + b.ID[:2] + "/" + b.ID
	if _, err := g.Client.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &orphan, Body: bytes.NewReader([]byte("x"))}); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(ctx, g.options(bucket, "o")); err == nil {
		s.Close()
		t.Fatal("Open of a prefix with blobs but no store.json succeeded")
	}
}

func TestCorruptionDetected(t *testing.T) {
	g := startGateway(t)
	bucket := g.bucket(t, false, false)
	ctx := context.Background()
	opt := g.options(bucket, "c/")
	opt.Key = testKey(9)
	s := g.open(t, opt)
	var blobs []store.Blob
	for i := range 40 {
		blobs = append(blobs, store.NewBlob(fmt.Appendf(nil, "Message-ID: <%d@x>\r\n\r\n%s", i, strings.Repeat("hello world ", 100+i))))
	}
	if err := s.Put(ctx, blobs); err != nil {
		t.Fatal(err)
	}
	victim := blobs[17]
	path := g.objectFile(bucket, "c/", victim.ID)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("object file of the victim: %v", err)
	}
	data[len(data)/2] ^= 0x01
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// A stray object in the blob area is reported too, with an empty id.
	stray := "c/blobs/zz/not-a-blob"
	if _, err := g.Client.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &stray, Body: bytes.NewReader([]byte("x"))}); err != nil {
		t.Fatal(err)
	}

	bad := map[string]error{}
	seen := 0
	err = s.Verify(ctx, func(id string, err error) error {
		seen++
		if err != nil {
			bad[id] = err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if seen != len(blobs)+1 {
		t.Fatalf("Verify visited %d objects, want %d", seen, len(blobs)+1)
	}
	if len(bad) != 2 || bad[victim.ID] == nil || bad[""] == nil {
		t.Fatalf("Verify reported %v; want exactly %s and the stray object", bad, victim.ID)
	}
	if !errors.Is(bad[victim.ID], store.ErrCorrupt) {
		t.Fatalf("Verify error %v does not wrap ErrCorrupt", bad[victim.ID])
	}
	if _, err := s.Get(ctx, victim.ID); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Get of the corrupted blob = %v, want ErrCorrupt", err)
	}
	if got, err := s.Get(ctx, blobs[16].ID); err != nil || !bytes.Equal(got, blobs[16].Data) {
		t.Fatalf("Get of an intact neighbour = %v", err)
	}

	// A valid record under the wrong key is corrupt too.
	src, err := os.ReadFile(g.objectFile(bucket, "c/", blobs[1].ID))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(g.objectFile(bucket, "c/", blobs[2].ID), src, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, blobs[2].ID); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Get of a swapped record = %v, want ErrCorrupt", err)
	}
}

// Sizes come back right after a restart (listing + HEAD), including for an
// object whose metadata was lost (record header fallback).
func TestStatsAfterReopen(t *testing.T) {
	g := startGateway(t)
	bucket := g.bucket(t, false, false)
	ctx := context.Background()
	opt := g.options(bucket, "r")
	s, err := Open(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	var blobs []store.Blob
	var raw int64
	for i := range 30 {
		b := store.NewBlob(bytes.Repeat(fmt.Appendf(nil, "line %d\r\n", i), 50+i))
		blobs = append(blobs, b)
		raw += int64(len(b.Data))
	}
	if err := s.Put(ctx, blobs); err != nil {
		t.Fatal(err)
	}
	want, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want.Blobs != 30 || want.RawBytes != raw {
		t.Fatalf("Stats = %+v, want 30 blobs, %d raw bytes", want, raw)
	}
	s.Close()

	// Drop the metadata of one object.
	key := "r/blobs/" + blobs[3].ID[:2] + "/" + blobs[3].ID
	obj, err := g.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.ReadFrom(obj.Body)
	obj.Body.Close()
	if _, err := g.Client.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(buf.Bytes())}); err != nil {
		t.Fatal(err)
	}

	s2 := g.open(t, opt)
	got, err := s2.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("Stats after reopen = %+v, want %+v", got, want)
	}
	sizes := map[string]int64{}
	if err := s2.Walk(ctx, func(id string, n int64) error { sizes[id] = n; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		if sizes[b.ID] != int64(len(b.Data)) {
			t.Fatalf("Walk size of %s = %d, want %d", b.ID, sizes[b.ID], len(b.Data))
		}
	}
}

func TestCredentialsFile(t *testing.T) {
	g := startGateway(t)
	bucket := g.bucket(t, false, false)
	ctx := context.Background()
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	if err := os.WriteFile(good, []byte("[default]\naws_access_key_id = "+testAccessKey+"\naws_secret_access_key = "+testSecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("[default]\naws_access_key_id = "+testAccessKey+"\naws_secret_access_key = wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opt := g.options(bucket, "cf")
	opt.Credentials = nil
	opt.CredentialsFile = good
	s := g.open(t, opt)
	if err := s.Put(ctx, []store.Blob{store.NewBlob([]byte("cred"))}); err != nil {
		t.Fatal(err)
	}
	opt.CredentialsFile = bad
	if s, err := Open(ctx, opt); err == nil {
		s.Close()
		t.Fatal("Open with a wrong secret succeeded")
	} else if strings.Contains(err.Error(), "wrong") {
		t.Fatalf("error reveals the secret: %v", err)
	}
	opt.CredentialsFile = filepath.Join(dir, "missing")
	if s, err := Open(ctx, opt); err == nil {
		s.Close()
		t.Fatal("Open with a missing credentials file succeeded")
	}
}

func TestObjectLock(t *testing.T) {
	g := startGateway(t)
	ctx := context.Background()

	// Without Object Lock: Retainer methods refuse, "on" refuses to open.
	plainBucket := g.bucket(t, false, false)
	ps := g.open(t, g.options(plainBucket, "x"))
	b0 := store.NewBlob([]byte("no lock here"))
	if err := ps.Put(ctx, []store.Blob{b0}); err != nil {
		t.Fatal(err)
	}
	if ps.ObjectLock() {
		t.Fatal("ObjectLock() true on a bucket without Object Lock")
	}
	if err := ps.SetRetention(ctx, b0.ID, time.Now().Add(time.Hour)); !errors.Is(err, store.ErrNoRetention) {
		t.Fatalf("SetRetention without lock = %v, want ErrNoRetention", err)
	}
	on := g.options(plainBucket, "x")
	on.ObjectLock = ObjectLockOn
	if s, err := Open(ctx, on); err == nil {
		s.Close()
		t.Fatal(`object_lock = "on" opened a bucket without Object Lock`)
	}

	bucket := g.bucket(t, true, true)
	s := g.open(t, g.options(bucket, "worm"))
	if !s.ObjectLock() {
		t.Skip("versitygw did not report Object Lock on a bucket created with it; Object Lock tests skipped")
	}
	off := g.options(bucket, "worm")
	off.ObjectLock = ObjectLockOff
	if so := g.open(t, off); so.ObjectLock() {
		t.Fatal(`object_lock = "off" still uses Object Lock`)
	}

	retained := store.NewBlob([]byte("retained until later"))
	held := store.NewBlob([]byte("under legal hold"))
	free := store.NewBlob([]byte("free to go"))
	if err := s.Put(ctx, []store.Blob{retained, held, free}); err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(time.Hour).Truncate(time.Second)
	if err := s.SetRetention(ctx, retained.ID, until); err != nil {
		t.Fatalf("SetRetention: %v", err)
	}
	if err := s.SetLegalHold(ctx, held.ID, true); err != nil {
		t.Fatalf("SetLegalHold: %v", err)
	}
	st, err := s.Lock(ctx, retained.ID)
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	if st.Mode != RetentionGovernance || !st.RetainUntil.Equal(until) || st.LegalHold {
		t.Fatalf("Lock(retained) = %+v, want GOVERNANCE until %v", st, until)
	}
	if st, err := s.Lock(ctx, held.ID); err != nil || !st.LegalHold {
		t.Fatalf("Lock(held) = %+v, %v; want legal hold", st, err)
	}

	err = s.Delete(ctx, []string{retained.ID, held.ID, free.ID})
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("Delete of locked blobs = %v, want ErrLocked", err)
	}
	for _, b := range []store.Blob{retained, held} {
		if got, err := s.Get(ctx, b.ID); err != nil || !bytes.Equal(got, b.Data) {
			t.Fatalf("locked blob %s after refused delete: %v", b.ID, err)
		}
	}
	if ok, err := s.Has(ctx, free.ID); err != nil || ok {
		t.Fatalf("unlocked blob still present after Delete: %v, %v", ok, err)
	}

	// Lifting the hold and clearing the (governance) retention allow deletion.
	if err := s.SetLegalHold(ctx, held.ID, false); err != nil {
		t.Fatalf("lift legal hold: %v", err)
	}
	if err := s.Delete(ctx, []string{held.ID}); err != nil {
		t.Fatalf("Delete after lifting the hold: %v", err)
	}
	// Governance retention can be shortened (with bypass); once it has
	// passed, the blob can be deleted.
	if err := s.SetRetention(ctx, retained.ID, time.Now().Add(5*time.Second)); err != nil {
		t.Fatalf("shorten governance retention: %v", err)
	}
	if err := s.Delete(ctx, []string{retained.ID}); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("Delete before the shortened retention passed = %v, want ErrLocked", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := s.Delete(ctx, []string{retained.ID})
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrLocked) || time.Now().After(deadline) {
			t.Fatalf("Delete after the retention passed: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // polling for the retention date to pass
	}
	for _, b := range []store.Blob{retained, held} {
		if _, err := s.Get(ctx, b.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get after delete = %v, want ErrNotFound", err)
		}
	}
}

// FuzzIDFromKey checks that any listed key is either rejected or maps back
// to exactly the key a blob id would have.
func FuzzIDFromKey(f *testing.F) {
	id := store.ID([]byte("x"))
	f.Add("p/blobs/" + id[:2] + "/" + id)
	f.Add("p/blobs/zz/" + id)
	f.Add("p/blobs/")
	f.Add("p/store.json")
	f.Add("p/blobs/" + strings.ToUpper(id[:2]) + "/" + strings.ToUpper(id))
	s := &Store{prefix: "p/"}
	f.Fuzz(func(t *testing.T, key string) {
		got, _, err := s.idFromKey(key)
		if err != nil {
			return
		}
		if s.blobKey(got) != key {
			t.Fatalf("idFromKey(%q) = %q, whose key is %q", key, got, s.blobKey(got))
		}
	})
}
