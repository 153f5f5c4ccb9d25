// Package store is mailarc's content-addressed blob store: the Store
// interface every backend implements (its contract suite is package
// storetest) and Local, the default backend of append-only pack files in the
// spirit of Facebook's Haystack.
//
// A blob's id is the lowercase hex SHA-256 of its bytes. Blobs are
// compressed with zstd (kept uncompressed when that does not make them
// smaller) and, when a key is configured, encrypted with AES-256-GCM.
//
// # Directory layout
//
//	DIR/LOCK                 flock(2)ed while a Local has the store open; a second open is refused
//	DIR/store.json           format, instance id, encryption ("none" | "aes-256-gcm"), key check
//	DIR/deleted.log          deletion log: locations of dead records
//	DIR/packs/00000001.pack  pack files, numbered from 1, never renumbered or reused
//	DIR/packs/00000001.idx   index of the pack (a cache, rebuilt from the pack when needed)
//
// All integers are little-endian; every CRC is CRC-32C (Castagnoli).
// Files are created 0600 and directories 0700.
//
// store.json is written once, atomically (temporary file, fsync, rename,
// fsync of the directory). key_check is a random 12-byte nonce followed by the
// AES-256-GCM seal of the text "mailarc store key check v1" with the instance
// id as additional data. OpenLocal refuses, before reading any pack: a key for
// a store written without one, no key for an encrypted store, and a key that
// does not open key_check. The key itself is never stored.
//
// # Pack, index and deletion-log files
//
// Each of these files starts with a 16-byte header:
//
//	0  4  magic: "MAPK" (pack), "MAIX" (index), "MADL" (deletion log)
//	4  1  file format version (1)
//	5  3  reserved, zero
//	8  4  pack number (0 in the deletion log)
//	12 4  CRC of bytes 0..11
//
// A pack is the header followed by records, back to back. Only the highest
// numbered pack (the active pack) is appended to; once appending a record
// would take it past MaxPackSize (default 1 GiB) a new pack with the next
// number is created (header written and fsynced, directory fsynced) and the
// old one is sealed for good.
//
// A record is a 60-byte header followed by the payload:
//
//	0  4  magic "MABR"
//	4  1  record format version (1)
//	5  1  flags: bit 0 = payload is zstd-compressed, bit 1 = payload is encrypted
//	6  2  reserved, zero
//	8  4  zstd dictionary id; 0 = none (reserved for trained dictionaries, not yet used)
//	12 32 blob id: the raw SHA-256 of the blob
//	44 8  raw length: the blob's size
//	52 4  payload length
//	56 4  CRC of bytes 0..55 and of the payload
//	60 .. payload
//
// The payload is the blob, zstd-compressed if flag 0 is set (one zstd frame
// with its content size; records written since 2026-12 omit zstd's own
// frame checksum, which the record's CRC and SHA-256 make redundant, and
// readers accept frames with or without it), at the store's level
// (ZstdLevel, default zstd's default level). A record whose payload is the
// blob as it is (flag 0 clear) in a store that compresses is "plain": a blob
// the caller encoded with Deferred (the archive does during ingest bursts,
// to spend no CPU on compression then), or one that zstd did not shrink.
// Plain records are told from the index alone (record length = header +
// raw length, plus the GCM nonce and tag when encrypted); Recompress
// rewrites them compressed (see below). If flag 1 is set, that is then sealed with
// AES-256-GCM: payload = 12-byte random nonce (fresh for every record) ||
// ciphertext || 16-byte tag, with header bytes 0..55 as additional data, so
// a payload cannot be moved to another record's header. Readers check the
// CRC, the tag, the lengths, and that the SHA-256 of the result equals the id,
// so Get returns the exact bytes or an error wrapping ErrCorrupt, never wrong
// bytes.
//
// An index file is its header followed by one 52-byte entry per record of
// the pack, in pack order:
//
//	0  32 blob id
//	32 8  offset of the record in the pack
//	40 4  record length (header + payload)
//	44 4  raw length
//	48 4  CRC of bytes 0..47
//
// The deletion log is its header followed by 48-byte entries, each saying
// "the record of blob id at this location is dead":
//
//	0  4  pack number
//	4  8  offset of the record in the pack
//	12 32 blob id
//	44 4  CRC of bytes 0..43
//
// Entries name a location, not just an id, so that a blob stored again after
// a deletion is not affected by the old entry.
//
// # Writing and durability
//
// Put verifies each blob's SHA-256 against its id, skips blobs already
// present, encodes the others (in parallel over the CPUs), then under the
// write lock appends them to the active pack with one write, makes them
// visible in memory and fsyncs the pack (more writes only when the batch
// crosses a pack roll). Only after the fsync are the records' index entries
// appended (not synced: the index is a cache, validated at open); Put
// returns after that.
//
// Put is Append followed by Sync, and callers may call the two halves
// themselves: Append writes and makes the blobs readable at once but does
// not fsync; Sync fsyncs the active pack if anything was appended since the
// last sync, and then writes the waiting index entries. The archive appends
// a group's blobs and syncs them while its catalog transaction commits.
// A pack is always synced before it is sealed (a roll or a compaction),
// Put syncs even when it had nothing new to write (a blob it skipped may
// have been appended but not yet synced), and Close syncs what is left, so
// "Put returned" always means durable. Delete appends entries to the
// deletion log and fsyncs it before returning (first syncing records Append
// left unsynced, so the log names only durable records). A failed write is truncated
// away; a failed fsync (or failed truncation) makes the store refuse
// further writes until it is reopened, since the state of the page cache is
// then unknown (blobs appended before it stay readable until then).
//
// In memory the store keeps a map from the 32-byte id to (pack, offset,
// record length, raw length), about 60-70 bytes per blob.
//
// # Opening and crash recovery
//
// OpenLocal removes leftover *.tmp files and index files without a pack,
// reads the deletion log (a torn final entry is truncated), and loads the
// packs in number order. For each pack it trusts the longest prefix of index
// entries whose CRCs are valid, whose offsets are contiguous from the pack
// header, and which end inside the pack; the rest of the pack is scanned
// record by record, checking each record's CRC. A bad record followed by a
// valid one (found by searching for the next "MABR" with a valid CRC) is
// corruption: it is skipped, logged, and reported by Verify. A bad stretch
// running to the end of the pack is a torn tail left by a crash during an
// append that was never acknowledged: the pack is truncated to the last good
// record, so a partial blob is never visible. The index file is then
// rewritten to cover the whole pack. A pack shorter than its header (a crash
// while creating it) gets its header rewritten.
//
// Records listed in the deletion log are dead. If a blob has two live
// records (possible only after a crash during compaction, see below), the
// one written last is kept and the others are logged as dead right away, so
// that a later Delete of the blob leaves no copy behind.
//
// # Deletion and compaction
//
// Delete only marks; Compact reclaims. Compact first seals the active pack
// if it holds dead records (so that it can be compacted too), then for each
// sealed pack with dead records (or none live): copies its live records
// verbatim, in chunks of at most 8 MiB, to the active pack (write, fsync),
// logs the old locations as dead (write, fsync), and points the map at the
// copies. Put, Get and Delete interleave with these chunks. When no live
// record is left the pack and its index file are removed and the pack
// directory is fsynced; finally the deletion log is rewritten atomically
// (temporary file, fsync, rename, fsync of the directory) without entries
// for packs that no longer exist. After Compact the bytes of deleted blobs no
// longer exist in any file under DIR (the file system may still hold the
// freed blocks until they are reused; use encryption at rest where that
// matters).
//
// Compaction compresses the plain records it copies (and only those; a
// damaged one is copied as it is). Recompress is the same process for the
// packs in which plain records make up a tenth or more of the live bytes
// (a burst's), sealing the active pack first if it is one of them; it
// keeps a rewritten record compressed even when zstd did not shrink it, so
// no record is rewritten twice for lack of compression, and it stops
// between chunks when its caller is busy again (it checks before sealing
// the active pack, too). It also removes sealed packs left with no live
// record. A plain record it cannot compress (damaged, or compressed to
// exactly its own length) stays plain and counts as pending. So that a
// burst lands in a pack of its own, a record encoded with Deferred is never
// appended to an active pack that holds more than 64 MiB of mostly
// compressed records: the store starts a new pack first. The store's bytes on disk are larger than usual while a
// burst's records wait (about twice, for mail), and back to normal once
// Recompress has run.
//
// A crash between the copy and the logging of a chunk leaves two live
// copies, resolved at open as described above; a crash before the pack is
// removed leaves a pack with no live records, removed by the next Compact.
// Because compaction only removes sealed packs and the active pack always has
// the highest number, pack numbers are never reused, so stale deletion-log
// entries can never match a new record.
//
// # Concurrency
//
// Local is safe for concurrent use. Put, Delete and each compaction step are
// serialized by a write lock; Get, Has, Walk, Verify and Stats read under a
// read lock held only to look up locations, and read pack files with pread,
// so they run alongside writes. Walk and Verify work on a snapshot of the
// live set taken when they start.
package store
