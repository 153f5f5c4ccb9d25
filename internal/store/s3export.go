package store

// This file exports, for backends that live in other packages (the S3
// backend in package s3store), the record encoding and the key check of the
// local store, plus the optional Retainer interface. It adds API only; the
// local pack code does not use it.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Errors of the optional retention (WORM) support.
var (
	// ErrLocked is returned (wrapped) by Delete of a backend with WORM
	// support when a blob is protected by a retention period or a legal
	// hold at the storage level and so cannot be removed.
	ErrLocked = errors.New("store: blob is locked (retention or legal hold)")
	// ErrNoRetention is returned (wrapped) by Retainer methods when the
	// backend could support them but this instance cannot (for example an S3
	// bucket without Object Lock).
	ErrNoRetention = errors.New("store: retention is not available on this store")
)

// Retainer is implemented by stores that can make blobs immutable at the
// storage level (WORM), such as an S3 bucket with Object Lock. Governance
// calls it, when the store implements it, to mirror retention policies and
// litigation holds onto the stored objects.
type Retainer interface {
	// SetRetention protects the blob from deletion until the given time.
	// Extending is always allowed; shortening may be refused by the backend.
	SetRetention(ctx context.Context, id string, until time.Time) error
	// SetLegalHold places (on) or removes (!on) an indefinite hold on the blob.
	SetLegalHold(ctx context.Context, id string, on bool) error
}

// ParseID decodes a blob id (64 lowercase hex characters) to its raw SHA-256.
func ParseID(id string) ([32]byte, error) { return parseID(id) }

// CodecOptions configures NewCodec.
type CodecOptions struct {
	// Key is the AES-256-GCM key (see LoadKeyFile); nil means no encryption.
	Key []byte
	// ZstdLevel is the compression level (default zstd.SpeedDefault).
	ZstdLevel zstd.EncoderLevel
	// NoCompress stores records without compression.
	NoCompress bool
}

// Codec encodes blobs into self-checking records and back, in exactly the
// record format of the local pack files (see the package comment): zstd
// compression when it helps, AES-256-GCM with the record header as
// additional data when a key is set, CRC-32C over header and payload, and
// the SHA-256 id checked on decode. It is safe for concurrent use.
type Codec struct {
	c codec
}

// NewCodec returns a Codec. Call Close when done with it.
func NewCodec(opt CodecOptions) (*Codec, error) {
	var c Codec
	if opt.Key != nil {
		aead, err := newAEAD(opt.Key)
		if err != nil {
			return nil, err
		}
		c.c.aead = aead
	}
	if opt.ZstdLevel == 0 {
		opt.ZstdLevel = zstd.SpeedDefault
	}
	var err error
	if !opt.NoCompress {
		c.c.enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(opt.ZstdLevel), zstd.WithEncoderCRC(false))
		if err != nil {
			return nil, fmt.Errorf("store: zstd: %w", err)
		}
	}
	c.c.dec, err = zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderMaxMemory(MaxBlobSize))
	if err != nil {
		if c.c.enc != nil {
			c.c.enc.Close()
		}
		return nil, fmt.Errorf("store: zstd: %w", err)
	}
	return &c, nil
}

// Encrypted reports whether the codec encrypts.
func (c *Codec) Encrypted() bool { return c.c.aead != nil }

// Encode returns the record for b. It checks that b.ID is a valid id and
// the SHA-256 of b.Data, and that the blob is at most MaxBlobSize bytes.
func (c *Codec) Encode(b Blob) ([]byte, error) {
	k, err := parseID(b.ID)
	if err != nil {
		return nil, err
	}
	if len(b.Data) > MaxBlobSize {
		return nil, fmt.Errorf("store: blob %s is %d bytes; the maximum is %d", b.ID, len(b.Data), MaxBlobSize)
	}
	if ID(b.Data) != b.ID {
		return nil, fmt.Errorf("store: blob data does not match its id %s", b.ID)
	}
	return c.c.encodeRecord(nil, k, b.Data)
}

// Decode checks a complete record (CRC, authentication, decompression,
// length, SHA-256) and returns the id named in its header and the blob.
// Every failure wraps ErrCorrupt. rec may be aliased by the result.
func (c *Codec) Decode(rec []byte) (id string, data []byte, err error) {
	h, data, err := c.c.decodeRecord(rec)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return hex.EncodeToString(h.id[:]), data, nil
}

// RecordHeaderSize is the length of a record's fixed header.
const RecordHeaderSize = recordHeaderSize

// RecordRawLen returns the raw (blob) length and id claimed by a record
// header, the first RecordHeaderSize bytes of a record. The header's CRC
// covers the payload too, so it is not checked here: use the result only
// as a size hint.
func RecordRawLen(hdr []byte) (id string, rawLen int64, err error) {
	h, err := parseHeader(hdr)
	if err != nil {
		return "", 0, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return hex.EncodeToString(h.id[:]), int64(h.rawLen), nil
}

// Close releases the codec's compressor and decompressor.
func (c *Codec) Close() error {
	var err error
	if c.c.enc != nil {
		err = c.c.enc.Close()
		c.c.enc = nil
	}
	if c.c.dec != nil {
		c.c.dec.Close()
		c.c.dec = nil
	}
	return err
}

// NewMeta returns the JSON of a new store.json (format, fresh instance id,
// creation time, encryption and key check, as the local store writes) for a
// store using c, and the instance id.
func NewMeta(c *Codec) (data []byte, instanceID string, err error) {
	var rnd [16]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, "", fmt.Errorf("store: instance id: %w", err)
	}
	m := metaFile{
		Format:     metaFormatVer,
		InstanceID: hex.EncodeToString(rnd[:]),
		Created:    time.Now().UTC().Truncate(time.Second),
		Encryption: encNone,
	}
	if c.c.aead != nil {
		m.Encryption = encAES256GCM
		nonce := make([]byte, gcmNonceSize)
		if _, err := rand.Read(nonce); err != nil {
			return nil, "", fmt.Errorf("store: nonce: %w", err)
		}
		m.KeyCheck = c.c.aead.Seal(nonce, nonce, []byte(keyCheckPlain), []byte(m.InstanceID))
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, "", fmt.Errorf("store: %w", err)
	}
	return append(b, '\n'), m.InstanceID, nil
}

// CheckMeta parses a store.json written by NewMeta (or by the local store)
// and checks that c's key, or its absence, matches how the store was
// written. where names the store in error messages. It returns the
// store's instance id.
func CheckMeta(data []byte, c *Codec, where string) (instanceID string, err error) {
	var m metaFile
	if err := json.Unmarshal(data, &m); err != nil {
		return "", fmt.Errorf("store: %s: %w", where, err)
	}
	if m.Format != metaFormatVer {
		return "", fmt.Errorf("store: %s: unsupported format %d (this build reads %d)", where, m.Format, metaFormatVer)
	}
	switch m.Encryption {
	case encNone:
		if c.c.aead != nil {
			return "", fmt.Errorf("store: %s was written without encryption but an encryption key is configured; remove the key setting or use a new location", where)
		}
	case encAES256GCM:
		if c.c.aead == nil {
			return "", fmt.Errorf("store: %s is encrypted; an encryption key (encryption_key_file) is required to open it", where)
		}
		if len(m.KeyCheck) < gcmNonceSize+gcmTagSize {
			return "", fmt.Errorf("store: %s: key check value is missing", where)
		}
		plain, err := c.c.aead.Open(nil, m.KeyCheck[:gcmNonceSize], m.KeyCheck[gcmNonceSize:], []byte(m.InstanceID))
		if err != nil || string(plain) != keyCheckPlain {
			return "", fmt.Errorf("store: the configured encryption key is not the key %s was written with", where)
		}
	default:
		return "", fmt.Errorf("store: %s: unknown encryption %q", where, m.Encryption)
	}
	if m.InstanceID == "" {
		return "", fmt.Errorf("store: %s: instance id is missing", where)
	}
	return m.InstanceID, nil
}
