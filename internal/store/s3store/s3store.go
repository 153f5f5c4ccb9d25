package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/klauspost/compress/zstd"

	"github.com/mailarc/mailarc/internal/store"
)

// Object Lock modes of Options.ObjectLock.
const (
	ObjectLockAuto = "auto" // use Object Lock when the bucket has it enabled
	ObjectLockOn   = "on"   // require Object Lock: Open fails without it
	ObjectLockOff  = "off"  // never use Object Lock
)

// Retention modes of Options.RetentionMode (S3's names).
const (
	RetentionGovernance = "GOVERNANCE"
	RetentionCompliance = "COMPLIANCE"
)

// DefaultConcurrency bounds the requests one Put, Delete, Walk or Verify
// runs at once.
const DefaultConcurrency = 16

// metaRawSize is the user-metadata key holding a blob's raw size.
const metaRawSize = "mailarc-raw-size"

// Options configures Open.
type Options struct {
	// Endpoint is the S3 endpoint URL, e.g. "https://s3.eu-central-1.amazonaws.com"
	// or "http://127.0.0.1:7070". Empty means AWS S3 for Region.
	Endpoint string
	// Region is the signing region (default "us-east-1").
	Region string
	// Bucket must exist.
	Bucket string
	// Prefix is prepended to every key; a "/" is added if missing.
	Prefix string
	// PathStyle addresses the bucket as ENDPOINT/BUCKET/KEY instead of
	// BUCKET.ENDPOINT/KEY (needed by most self-hosted S3 servers).
	PathStyle bool
	// CredentialsFile is an AWS shared credentials file (INI, profile from
	// AWS_PROFILE or "default"). When empty the SDK's default chain is
	// used: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, then
	// AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, web identity,
	// then instance or task roles.
	CredentialsFile string
	// Credentials, when set, overrides both (tests, embedding).
	Credentials aws.CredentialsProvider
	// ObjectLock is ObjectLockAuto (default), ObjectLockOn or ObjectLockOff.
	ObjectLock string
	// RetentionMode is RetentionGovernance (default) or RetentionCompliance.
	RetentionMode string
	// Key is the AES-256-GCM key (see store.LoadKeyFile); nil stores blobs
	// unencrypted. The rules of the local store apply: a store written with
	// a key opens only with that key, one written without only without.
	Key []byte
	// ZstdLevel is the compression level (default zstd.SpeedDefault).
	ZstdLevel zstd.EncoderLevel
	// NoCompress stores blobs without compression.
	NoCompress bool
	// Concurrency bounds parallel requests per call (default 16).
	Concurrency int
	// MaxAttempts is the number of tries per request, including the first
	// (default 5), with the SDK's exponential backoff in between.
	MaxAttempts int
	// Logger receives warnings; nil means slog.Default(). Blob contents and
	// credentials are never logged.
	Logger *slog.Logger
}

// Store is the S3 store.Store. It is safe for concurrent use.
type Store struct {
	cli      *s3.Client
	bucket   string
	prefix   string
	opt      Options
	log      *slog.Logger
	codec    *store.Codec
	instance string
	lock     bool // Object Lock enabled and in use
	mode     types.ObjectLockRetentionMode

	sizes sizeCache

	mu       sync.Mutex // guards closed and inflight
	closed   bool
	inflight int
	idle     *sync.Cond // signalled when inflight drops to 0
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.Retainer = (*Store)(nil)
)

// Open connects to the bucket, checks the store identity and key (creating
// store.json in an empty prefix) and detects Object Lock.
func Open(ctx context.Context, opt Options) (*Store, error) {
	if opt.Bucket == "" {
		return nil, errors.New("s3store: bucket is required")
	}
	if opt.Region == "" {
		opt.Region = "us-east-1"
	}
	if opt.Prefix != "" && !strings.HasSuffix(opt.Prefix, "/") {
		opt.Prefix += "/"
	}
	if strings.HasPrefix(opt.Prefix, "/") {
		return nil, fmt.Errorf("s3store: prefix %q must not start with /", opt.Prefix)
	}
	switch opt.ObjectLock {
	case "":
		opt.ObjectLock = ObjectLockAuto
	case ObjectLockAuto, ObjectLockOn, ObjectLockOff:
	default:
		return nil, fmt.Errorf("s3store: object_lock must be auto, on or off, not %q", opt.ObjectLock)
	}
	switch strings.ToUpper(opt.RetentionMode) {
	case "", RetentionGovernance:
		opt.RetentionMode = RetentionGovernance
	case RetentionCompliance:
		opt.RetentionMode = RetentionCompliance
	default:
		return nil, fmt.Errorf("s3store: retention mode must be GOVERNANCE or COMPLIANCE, not %q", opt.RetentionMode)
	}
	if opt.Concurrency <= 0 {
		opt.Concurrency = DefaultConcurrency
	}
	if opt.MaxAttempts <= 0 {
		opt.MaxAttempts = 5
	}
	s := &Store{
		bucket: opt.Bucket,
		prefix: opt.Prefix,
		opt:    opt,
		log:    opt.Logger,
		mode:   types.ObjectLockRetentionMode(opt.RetentionMode),
		sizes:  sizeCache{m: make(map[[32]byte]sizeEntry)},
	}
	s.idle = sync.NewCond(&s.mu)
	if s.log == nil {
		s.log = slog.Default()
	}
	cli, err := newClient(ctx, opt)
	if err != nil {
		return nil, err
	}
	s.cli = cli
	if _, err := cli.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket}); err != nil {
		return nil, fmt.Errorf("s3store: bucket %s: %w", s.bucket, err)
	}
	s.codec, err = store.NewCodec(store.CodecOptions{Key: opt.Key, ZstdLevel: opt.ZstdLevel, NoCompress: opt.NoCompress})
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			s.codec.Close()
		}
	}()
	if s.instance, err = s.loadOrCreateMeta(ctx); err != nil {
		return nil, err
	}
	if err := s.detectObjectLock(ctx); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// newClient builds the S3 client from the options.
func newClient(ctx context.Context, opt Options) (*s3.Client, error) {
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConnsPerHost = 2 * opt.Concurrency
	})
	loadOpts := []func(*config.LoadOptions) error{
		config.WithRegion(opt.Region),
		config.WithHTTPClient(httpClient),
		config.WithRetryMaxAttempts(opt.MaxAttempts),
	}
	creds := opt.Credentials
	if creds == nil && opt.CredentialsFile != "" {
		c, err := fileCredentials(ctx, opt.CredentialsFile)
		if err != nil {
			return nil, err
		}
		creds = c
	}
	if creds != nil {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(creds))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("s3store: aws config: %w", err)
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opt.Endpoint != "" {
			o.BaseEndpoint = aws.String(opt.Endpoint)
		}
		o.UsePathStyle = opt.PathStyle
		// PUTs carry our own SHA-256 checksum; records check themselves on
		// read (CRC-32C, GCM tag, SHA-256), so the SDK need not add CRCs
		// nobody asked for, which some S3-compatible servers reject.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	}), nil
}

// fileCredentials reads static credentials from an AWS shared credentials
// file (profile AWS_PROFILE or "default"). An explicitly configured file
// wins over the AWS_* environment.
func fileCredentials(ctx context.Context, path string) (aws.CredentialsProvider, error) {
	profile := os.Getenv("AWS_PROFILE")
	if profile == "" {
		profile = "default"
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("s3store: credentials file: %w", err)
	}
	sc, err := config.LoadSharedConfigProfile(ctx, profile, func(o *config.LoadSharedConfigOptions) {
		o.CredentialsFiles = []string{path}
		o.ConfigFiles = []string{}
	})
	if err != nil {
		return nil, fmt.Errorf("s3store: credentials file %s, profile %s: %w", path, profile, err)
	}
	c := sc.Credentials
	if c.AccessKeyID == "" || c.SecretAccessKey == "" {
		return nil, fmt.Errorf("s3store: credentials file %s, profile %s: aws_access_key_id and aws_secret_access_key are required", path, profile)
	}
	return credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken), nil
}

// InstanceID returns the store's instance id (from store.json).
func (s *Store) InstanceID() string { return s.instance }

// ObjectLock reports whether Object Lock is in use (the bucket has it
// enabled and the configuration does not turn it off).
func (s *Store) ObjectLock() bool { return s.lock }

func (s *Store) metaKey() string { return s.prefix + "store.json" }

// blobKey returns the object key of a blob.
func (s *Store) blobKey(id string) string { return s.prefix + "blobs/" + id[:2] + "/" + id }

// idFromKey returns the id named by a blob key, or an error for a key that
// is not one.
func (s *Store) idFromKey(key string) (string, [32]byte, error) {
	rest, ok := strings.CutPrefix(key, s.prefix+"blobs/")
	if !ok || len(rest) != 67 || rest[2] != '/' || rest[:2] != rest[3:5] {
		return "", [32]byte{}, fmt.Errorf("s3store: unexpected object %q in the blob area", key)
	}
	id := rest[3:]
	k, err := store.ParseID(id)
	if err != nil {
		return "", k, fmt.Errorf("s3store: unexpected object %q in the blob area: %w", key, err)
	}
	return id, k, nil
}

// loadOrCreateMeta reads store.json, creating it in an empty prefix, and
// checks the key against it.
func (s *Store) loadOrCreateMeta(ctx context.Context) (string, error) {
	where := fmt.Sprintf("s3://%s/%s", s.bucket, s.metaKey())
	b, err := s.getObject(ctx, s.metaKey(), 1<<20)
	if err == nil {
		return store.CheckMeta(b, s.codec, where)
	}
	if !isNotFound(err) {
		return "", fmt.Errorf("s3store: read %s: %w", where, err)
	}
	out, err := s.cli.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket: &s.bucket, Prefix: aws.String(s.prefix + "blobs/"), MaxKeys: aws.Int32(1),
	})
	if err != nil {
		return "", fmt.Errorf("s3store: list s3://%s/%sblobs/: %w", s.bucket, s.prefix, err)
	}
	if len(out.Contents) > 0 {
		return "", fmt.Errorf("s3store: s3://%s/%s holds blobs but no store.json; refusing to guess its encryption", s.bucket, s.prefix)
	}
	data, inst, err := store.NewMeta(s.codec)
	if err != nil {
		return "", err
	}
	err = s.putObject(ctx, s.metaKey(), data, nil, true)
	if isPreconditionFailed(err) {
		// Created concurrently by someone else: use theirs.
		b, err := s.getObject(ctx, s.metaKey(), 1<<20)
		if err != nil {
			return "", fmt.Errorf("s3store: read %s: %w", where, err)
		}
		return store.CheckMeta(b, s.codec, where)
	}
	if err != nil {
		return "", fmt.Errorf("s3store: create %s: %w", where, err)
	}
	s.log.Info("s3store: created store", "bucket", s.bucket, "prefix", s.prefix, "instance", inst, "encrypted", s.codec.Encrypted())
	return inst, nil
}

// putObject uploads data under key with its SHA-256 checksum. With
// ifNoneMatch the upload fails (precondition) when the key exists; servers
// that do not implement conditional writes get a plain PUT.
func (s *Store) putObject(ctx context.Context, key string, data []byte, meta map[string]string, ifNoneMatch bool) error {
	sum := sha256.Sum256(data)
	in := &s3.PutObjectInput{
		Bucket:            &s.bucket,
		Key:               &key,
		Body:              bytes.NewReader(data),
		ContentLength:     aws.Int64(int64(len(data))),
		ContentType:       aws.String("application/octet-stream"),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		ChecksumSHA256:    aws.String(base64.StdEncoding.EncodeToString(sum[:])),
		Metadata:          meta,
	}
	if ifNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	_, err := s.cli.PutObject(ctx, in)
	if err != nil && ifNoneMatch && apiCode(err) == "NotImplemented" {
		in.IfNoneMatch = nil
		in.Body = bytes.NewReader(data)
		_, err = s.cli.PutObject(ctx, in)
	}
	return err
}

// getObject downloads a whole object of at most limit bytes.
func (s *Store) getObject(ctx context.Context, key string, limit int64) ([]byte, error) {
	out, err := s.cli.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	n := aws.ToInt64(out.ContentLength)
	if n > limit {
		return nil, fmt.Errorf("object %s is %d bytes, more than the %d expected", key, n, limit)
	}
	buf := bytes.NewBuffer(make([]byte, 0, max(n, 0)))
	if _, err := io.Copy(buf, io.LimitReader(out.Body, limit+1)); err != nil {
		return nil, fmt.Errorf("read object %s: %w", key, err)
	}
	if int64(buf.Len()) > limit {
		return nil, fmt.Errorf("object %s is more than the %d bytes expected", key, limit)
	}
	return buf.Bytes(), nil
}

// maxRecord bounds the size of a blob object: the largest blob plus
// compression framing and encryption overhead.
const maxRecord = store.MaxBlobSize + store.MaxBlobSize/64 + 1<<17

// begin registers a running call; it fails after Close.
func (s *Store) begin() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.inflight++
	return nil
}

func (s *Store) end() {
	s.mu.Lock()
	s.inflight--
	if s.inflight == 0 {
		s.idle.Broadcast()
	}
	s.mu.Unlock()
}

// Put stores the blobs, uploading up to Concurrency objects at a time, and
// returns when every one of them is stored. A batch with an invalid id or a
// blob whose SHA-256 differs from its id is refused whole, before anything
// is uploaded.
func (s *Store) Put(ctx context.Context, blobs []store.Blob) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	seen := make(map[string]bool, len(blobs))
	todo := make([]store.Blob, 0, len(blobs))
	for _, b := range blobs {
		if _, err := store.ParseID(b.ID); err != nil {
			return fmt.Errorf("s3store: put: %w", err)
		}
		if len(b.Data) > store.MaxBlobSize {
			return fmt.Errorf("s3store: put: blob %s is %d bytes; the maximum is %d", b.ID, len(b.Data), store.MaxBlobSize)
		}
		if store.ID(b.Data) != b.ID {
			return fmt.Errorf("s3store: put: blob data does not match its id %s", b.ID)
		}
		if !seen[b.ID] {
			seen[b.ID] = true
			todo = append(todo, b)
		}
	}
	g, gctx := newGroup(ctx, s.opt.Concurrency)
	for _, b := range todo {
		g.Go(func() error { return s.putOne(gctx, b) })
	}
	return g.Wait()
}

// putOne stores one validated blob unless it is already there.
func (s *Store) putOne(ctx context.Context, b store.Blob) error {
	k, _ := store.ParseID(b.ID)
	key := s.blobKey(b.ID)
	head, err := s.cli.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err == nil {
		s.sizes.add(k, int64(len(b.Data)), aws.ToInt64(head.ContentLength))
		return nil
	}
	if !isNotFound(err) {
		return fmt.Errorf("s3store: put %s: head: %w", b.ID, err)
	}
	rec, err := s.codec.Encode(b)
	if err != nil {
		return fmt.Errorf("s3store: put: %w", err)
	}
	meta := map[string]string{metaRawSize: strconv.Itoa(len(b.Data))}
	if err := s.putObject(ctx, key, rec, meta, false); err != nil {
		return fmt.Errorf("s3store: put %s: %w", b.ID, err)
	}
	s.sizes.add(k, int64(len(b.Data)), int64(len(rec)))
	return nil
}

// Get downloads, checks and returns a blob.
func (s *Store) Get(ctx context.Context, id string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if _, err := store.ParseID(id); err != nil {
		return nil, fmt.Errorf("%v: %w", err, store.ErrNotFound)
	}
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.end()
	return s.get(ctx, id)
}

func (s *Store) get(ctx context.Context, id string) ([]byte, error) {
	rec, err := s.getObject(ctx, s.blobKey(id), maxRecord)
	if isNotFound(err) {
		return nil, fmt.Errorf("s3store: blob %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("s3store: get %s: %w", id, err)
	}
	hid, data, err := s.codec.Decode(rec)
	if err != nil {
		return nil, fmt.Errorf("s3store: blob %s: %w", id, err)
	}
	if hid != id {
		return nil, fmt.Errorf("s3store: blob %s: %w: object holds the record of %s", id, store.ErrCorrupt, hid)
	}
	return data, nil
}

// Has reports whether the blob's object exists (HEAD).
func (s *Store) Has(ctx context.Context, id string) (bool, error) {
	if _, err := store.ParseID(id); err != nil {
		return false, nil
	}
	if err := s.begin(); err != nil {
		return false, err
	}
	defer s.end()
	key := s.blobKey(id)
	_, err := s.cli.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err == nil {
		return true, nil
	}
	if isNotFound(err) {
		return false, nil
	}
	return false, fmt.Errorf("s3store: has %s: %w", id, err)
}

// Delete removes the blobs' objects, in a versioned bucket with all their
// versions. Unknown ids are ignored. A blob protected by Object Lock is
// left in place and reported with an error wrapping store.ErrLocked; the
// other blobs are still deleted.
func (s *Store) Delete(ctx context.Context, ids []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	keys := make([][32]byte, 0, len(ids))
	uniq := make([]string, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		k, err := store.ParseID(id)
		if err != nil {
			return fmt.Errorf("s3store: delete: %w", err)
		}
		if !seen[id] {
			seen[id] = true
			keys = append(keys, k)
			uniq = append(uniq, id)
		}
	}
	if len(uniq) == 0 {
		return nil
	}
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	versioned, err := s.versioned(ctx)
	if err != nil {
		return err
	}
	errs := make([]error, len(uniq))
	g, gctx := newGroup(ctx, s.opt.Concurrency)
	for i, id := range uniq {
		g.Go(func() error {
			var err error
			if versioned {
				err = s.deleteVersions(gctx, id)
			} else {
				key := s.blobKey(id)
				_, err = s.cli.DeleteObject(gctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key})
				if err != nil {
					err = fmt.Errorf("s3store: delete %s: %w", id, classifyDelete(err))
				}
			}
			if err == nil {
				s.sizes.remove(keys[i])
			}
			errs[i] = err
			// Keep going on a locked blob; stop on anything else.
			if err != nil && !errors.Is(err, store.ErrLocked) {
				return err
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// versioned reports whether the bucket has (or had) versioning, asked on
// every Delete so that turning versioning on takes effect at once.
func (s *Store) versioned(ctx context.Context) (bool, error) {
	if s.lock {
		return true, nil // Object Lock implies versioning
	}
	out, err := s.cli.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: &s.bucket})
	if err != nil {
		if c := apiCode(err); c == "NotImplemented" || c == "MethodNotAllowed" {
			return false, nil
		}
		return false, fmt.Errorf("s3store: bucket versioning of %s: %w", s.bucket, err)
	}
	return out.Status != "", nil
}

// deleteVersions deletes every version and delete marker of a blob's key.
func (s *Store) deleteVersions(ctx context.Context, id string) error {
	key := s.blobKey(id)
	var vids []*string
	p := s3.NewListObjectVersionsPaginator(s.cli, &s3.ListObjectVersionsInput{Bucket: &s.bucket, Prefix: &key})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("s3store: delete %s: list versions: %w", id, err)
		}
		for _, v := range out.Versions {
			if aws.ToString(v.Key) == key {
				vids = append(vids, v.VersionId)
			}
		}
		for _, m := range out.DeleteMarkers {
			if aws.ToString(m.Key) == key {
				vids = append(vids, m.VersionId)
			}
		}
	}
	var errs []error
	for _, vid := range vids {
		_, err := s.cli.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key, VersionId: vid})
		if err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("s3store: delete %s version %s: %w", id, aws.ToString(vid), classifyDelete(err)))
		}
	}
	return errors.Join(errs...)
}

// classifyDelete wraps store.ErrLocked around the refusal of a delete by
// Object Lock.
func classifyDelete(err error) error {
	switch apiCode(err) {
	case "AccessDenied", "ObjectLocked", "InvalidRequest":
		return fmt.Errorf("%w: %w", store.ErrLocked, err)
	}
	return err
}

// Compact does nothing: deletes are immediate (all versions included).
func (s *Store) Compact(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.begin(); err != nil {
		return err
	}
	s.end()
	return nil
}

// listed is one blob object found by a listing.
type listed struct {
	id     string
	k      [32]byte
	stored int64
	err    error // set for a key that is not a blob key
}

// listPages lists the blob area page by page (up to 1000 keys each).
func (s *Store) listPages(ctx context.Context, fn func(page []listed) error) error {
	p := s3.NewListObjectsV2Paginator(s.cli, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.prefix + "blobs/")})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("s3store: list s3://%s/%sblobs/: %w", s.bucket, s.prefix, err)
		}
		page := make([]listed, 0, len(out.Contents))
		for _, o := range out.Contents {
			id, k, err := s.idFromKey(aws.ToString(o.Key))
			page = append(page, listed{id: id, k: k, stored: aws.ToInt64(o.Size), err: err})
		}
		if err := fn(page); err != nil {
			return err
		}
	}
	return nil
}

// rawSizes returns the raw sizes of a page's blobs: from the cache, else
// by HEAD (or a ranged GET of the record header), concurrently. Blobs that
// vanished meanwhile get -1.
func (s *Store) rawSizes(ctx context.Context, page []listed) ([]int64, error) {
	raw := make([]int64, len(page))
	ticket := s.sizes.ticket()
	g, gctx := newGroup(ctx, s.opt.Concurrency)
	for i, l := range page {
		if l.err != nil {
			raw[i] = -1
			continue
		}
		if e, ok := s.sizes.get(l.k); ok {
			raw[i] = e.raw
			continue
		}
		g.Go(func() error {
			n, stored, err := s.fetchRawSize(gctx, l.id)
			if isNotFound(err) {
				raw[i] = -1
				return nil
			}
			if err != nil {
				return err
			}
			raw[i] = n
			s.sizes.discover(l.k, n, stored, ticket)
			return nil
		})
	}
	return raw, g.Wait()
}

// fetchRawSize reads a blob's raw size from its metadata, falling back to
// the record header.
func (s *Store) fetchRawSize(ctx context.Context, id string) (raw, stored int64, err error) {
	key := s.blobKey(id)
	head, err := s.cli.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return 0, 0, err
	}
	stored = aws.ToInt64(head.ContentLength)
	if v, ok := head.Metadata[metaRawSize]; ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 && n <= store.MaxBlobSize {
			return n, stored, nil
		}
	}
	out, err := s.cli.GetObject(ctx, &s3.GetObjectInput{
		Bucket: &s.bucket, Key: &key,
		Range: aws.String(fmt.Sprintf("bytes=0-%d", store.RecordHeaderSize-1)),
	})
	if err != nil {
		return 0, 0, err
	}
	defer out.Body.Close()
	hdr, err := io.ReadAll(io.LimitReader(out.Body, store.RecordHeaderSize))
	if err != nil {
		return 0, 0, fmt.Errorf("s3store: read header of %s: %w", id, err)
	}
	hid, n, err := store.RecordRawLen(hdr)
	if err != nil {
		return 0, 0, fmt.Errorf("s3store: blob %s: %w", id, err)
	}
	if hid != id {
		return 0, 0, fmt.Errorf("s3store: blob %s: %w: object holds the record of %s", id, store.ErrCorrupt, hid)
	}
	return n, stored, nil
}

// Walk lists the bucket and calls fn for every blob with its raw size.
// Objects in the blob area that are not blobs are skipped (Verify reports
// them).
func (s *Store) Walk(ctx context.Context, fn func(id string, size int64) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	return s.listPages(ctx, func(page []listed) error {
		raw, err := s.rawSizes(ctx, page)
		if err != nil {
			return fmt.Errorf("s3store: walk: %w", err)
		}
		for i, l := range page {
			if raw[i] < 0 {
				continue
			}
			if err := fn(l.id, raw[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// Verify downloads every blob, checks its record (CRC, GCM tag,
// decompression, SHA-256 against the id in the key) and calls fn for each,
// with a non-nil error wrapping store.ErrCorrupt for a corrupt blob. Keys in
// the blob area that are not blob keys are reported with an empty id.
// Blobs are checked Concurrency at a time; fn is called from one goroutine,
// in listing order.
func (s *Store) Verify(ctx context.Context, fn func(id string, err error) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	return s.listPages(ctx, func(page []listed) error {
		res := make([]error, len(page))
		gone := make([]bool, len(page))
		g, gctx := newGroup(ctx, s.opt.Concurrency)
		for i, l := range page {
			if l.err != nil {
				res[i] = fmt.Errorf("%w: %w", store.ErrCorrupt, l.err)
				continue
			}
			g.Go(func() error {
				_, err := s.get(gctx, l.id)
				switch {
				case errors.Is(err, store.ErrNotFound):
					gone[i] = true // deleted since the listing
				case errors.Is(err, store.ErrCorrupt):
					res[i] = err
				case err != nil:
					return fmt.Errorf("s3store: verify: %w", err)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		for i, l := range page {
			if gone[i] {
				continue
			}
			if err := fn(l.id, res[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// Stats returns the blob count and sizes. The first call lists the bucket
// (reading unknown raw sizes with HEAD); later calls are answered from the
// counters this process keeps up to date.
func (s *Store) Stats(ctx context.Context) (store.Stats, error) {
	if err := ctx.Err(); err != nil {
		return store.Stats{}, err
	}
	if err := s.begin(); err != nil {
		return store.Stats{}, err
	}
	defer s.end()
	if err := s.sizes.load(ctx, s); err != nil {
		return store.Stats{}, err
	}
	n, raw, stored := s.sizes.totals()
	return store.Stats{Blobs: n, RawBytes: raw, StoredBytes: stored}, nil
}

// Close waits for running calls and releases the store. Calls after Close
// return store.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for s.inflight > 0 {
		s.idle.Wait()
	}
	s.mu.Unlock()
	return s.codec.Close()
}

// apiCode returns the S3 error code of err, or "".
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// httpStatus returns the HTTP status of a failed request, or 0.
func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func isNotFound(err error) bool {
	if err == nil {
		return false
	}
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	switch apiCode(err) {
	case "NoSuchKey", "NotFound", "NoSuchVersion":
		return true
	}
	return false
}

func isPreconditionFailed(err error) bool {
	return err != nil && (apiCode(err) == "PreconditionFailed" || httpStatus(err) == http.StatusPreconditionFailed)
}
