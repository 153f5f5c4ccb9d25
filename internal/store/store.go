package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// Errors returned by stores. They are wrapped with context; test with errors.Is.
var (
	// ErrNotFound is returned by Get when the blob is absent or deleted.
	ErrNotFound = errors.New("store: blob not found")
	// ErrCorrupt is returned by Get (and reported by Verify) when the stored
	// bytes of a blob fail their checks: CRC, authentication, decompression
	// or the sha256 of the content.
	ErrCorrupt = errors.New("store: blob corrupt")
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("store: closed")
)

// Blob is one content-addressed blob.
type Blob struct {
	ID   string // lowercase hex sha256 of Data
	Data []byte // the message bytes to keep

	// record is Data already encoded by Local.Encode (nil: Put encodes).
	record []byte
	// verified is set by Local.Encode once it has checked Data against ID;
	// Put then does not hash Data again.
	verified bool
	// deferred is set by Local.Encode with Deferred: record holds Data
	// uncompressed, to be compressed by Recompress.
	deferred bool
}

// Stats describes the content of a store.
type Stats struct {
	Blobs        int64 // live blobs
	RawBytes     int64 // sum of the live blobs' sizes
	StoredBytes  int64 // bytes the live blobs occupy in the backend (after compression, with overhead)
	DeletedBytes int64 // stored bytes of deleted blobs awaiting compaction
	Packs        int   // pack files (0 for backends without packs)
}

// Store is a content-addressed blob store. Implementations are safe for
// concurrent use.
type Store interface {
	// Put stores the blobs and returns only when all of them are durable (one
	// sync of the pack data plus whatever index/metadata, per call, not per
	// blob). Blobs already present are skipped. Put verifies
	// sha256(Data)==ID and refuses a mismatch with an error, storing nothing
	// of that blob.
	Put(ctx context.Context, blobs []Blob) error
	// Get returns the bytes of a blob; ErrNotFound (wrapped) when absent or deleted.
	Get(ctx context.Context, id string) ([]byte, error)
	// Has reports whether the blob is present (and not deleted).
	Has(ctx context.Context, id string) (bool, error)
	// Delete removes blobs; durable on return. Unknown ids are ignored.
	Delete(ctx context.Context, ids []string) error
	// Compact reclaims the space of deleted blobs so their bytes no longer
	// exist in the backend. Safe concurrently with Put and Get.
	Compact(ctx context.Context) error
	// Walk calls fn for every live blob with its raw size. An error from fn
	// stops the walk and is returned.
	Walk(ctx context.Context, fn func(id string, size int64) error) error
	// Verify re-reads, decrypts, decompresses and re-hashes every live blob
	// and calls fn for each, with err non-nil for a corrupt one; it also
	// reports unreadable or torn records it finds (their id may be empty when
	// unreadable). An error from fn stops the verification and is returned.
	Verify(ctx context.Context, fn func(id string, err error) error) error
	// Stats returns counters describing the store.
	Stats(ctx context.Context) (Stats, error)
	// Close releases the store's resources.
	Close() error
}

// ID returns the id of data: the lowercase hex sha256.
func ID(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// NewBlob returns the Blob for data with its id computed.
func NewBlob(data []byte) Blob { return Blob{ID: ID(data), Data: data} }

// parseID decodes a lowercase hex sha256 id.
func parseID(id string) ([32]byte, error) {
	var k [32]byte
	if len(id) != 64 {
		return k, fmt.Errorf("store: invalid id %q: want 64 lowercase hex characters", truncID(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return k, fmt.Errorf("store: invalid id %q: want 64 lowercase hex characters", truncID(id))
		}
	}
	if _, err := hex.Decode(k[:], []byte(id)); err != nil {
		return k, fmt.Errorf("store: invalid id %q: %w", truncID(id), err)
	}
	return k, nil
}

func truncID(id string) string {
	if len(id) > 80 {
		return id[:80] + "..."
	}
	return id
}
