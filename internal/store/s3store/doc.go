// Package s3store is the S3-compatible backend of mailarc's blob store
// (store.Store): AWS S3, Ceph RGW, SeaweedFS, MinIO, Versity's gateway or
// any object store speaking the S3 API. It passes the same contract suite
// (package storetest) as the local pack store.
//
// # Bucket layout
//
// Everything lives under an optional key prefix P (for example "mailarc/"),
// so that one bucket can hold several archives:
//
//	P store.json               the store's identity: same JSON as the local store.json
//	                           (format, instance id, created, encryption, key check)
//	P blobs/<id[0:2]>/<id>     one object per blob, keyed by its lowercase hex SHA-256
//
// Each blob object holds exactly one record in the format of the local pack
// files (see package store: 60-byte header with magic "MABR", flags, zstd
// dictionary id, raw SHA-256, lengths and a CRC-32C; payload zstd-compressed
// when that helps and, with a key, sealed with AES-256-GCM using the header
// as additional data). The object carries the user metadata
// "mailarc-raw-size" (the blob's size, a hint for listings) and is uploaded
// with an x-amz-checksum-sha256 of the record bytes, so the object store
// verifies the upload itself; Get re-checks the CRC, the GCM tag and the
// SHA-256 of the content, so it returns the exact bytes or an error
// wrapping store.ErrCorrupt.
//
// store.json is written once when the store is created (with If-None-Match
// where the server supports it). Open refuses, before touching any blob: a
// key for a store written without one, no key for an encrypted store, a key
// that does not open the key check, and a prefix holding blobs but no
// store.json.
//
// # Durability and consistency
//
// Put validates every blob's id first and refuses the whole batch on a
// mismatch, then for each new blob (bounded concurrency, default 16) checks
// with HEAD whether it is already stored and otherwise PUTs it; it returns
// only when every PUT has succeeded. A successful S3 PUT is durable, so an
// acknowledged blob survives a crash of mailarc. Requests are retried by the
// SDK's standard retryer (exponential backoff with jitter).
//
// Delete removes the objects at once: in a bucket that has (or had)
// versioning, every version and delete marker of the key is deleted by
// version id, so purged mail is really gone and no noncurrent copy lingers.
// A version protected by S3 Object Lock (retention or legal hold) is not
// deleted; Delete then fails with an error wrapping store.ErrLocked.
// Compact has nothing to do.
//
// # Object Lock (WORM)
//
// With object_lock "auto" (the default) Open asks the bucket for its Object
// Lock configuration; when it is enabled, Store implements store.Retainer:
// SetRetention sets the object's retain-until date (GOVERNANCE mode by
// default, so an administrator with s3:BypassGovernanceRetention can still
// shorten it; COMPLIANCE on request) and SetLegalHold places or lifts an S3
// legal hold. ExtendRetention (used by governance) only ever extends a
// date, without asking to bypass GOVERNANCE retention, and reports the date
// in force. With "on" Open fails if the bucket lacks Object Lock; with
// "off" it is never used.
//
// # Sizes, Walk and Stats
//
// Listings (ListObjectsV2) give keys and stored sizes but not the raw sizes
// that Walk and Stats report. The store keeps an in-memory map from id to
// (raw size, stored size), about 120 bytes per blob, filled by Put and by
// listings; sizes it does not know are read with HEAD (the
// "mailarc-raw-size" metadata, else the first bytes of the record). Walk
// always lists the bucket; Stats lists it once (on first use) and then
// keeps its counters up to date from this process's own Puts and Deletes,
// so changes made to the bucket by other clients show up in Stats only
// after a restart. Only one mailarc node may write a given bucket and
// prefix.
package s3store
