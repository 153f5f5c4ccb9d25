package store

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/klauspost/compress/zstd"
)

// On-disk constants. They are part of the format described in the package
// comment; changing any of them needs a new format version.
const (
	recordMagic      = "MABR"
	recordVersion    = 1
	recordHeaderSize = 60

	flagCompressed = 1 << 0
	flagEncrypted  = 1 << 1
	knownFlags     = flagCompressed | flagEncrypted

	fileHeaderSize = 16
	packMagic      = "MAPK"
	idxMagic       = "MAIX"
	deadMagic      = "MADL"
	fileVersion    = 1

	idxEntrySize  = 52
	deadEntrySize = 48

	gcmNonceSize = 12
	gcmTagSize   = 16

	// MaxBlobSize is the largest blob Put accepts (1 GiB).
	MaxBlobSize = 1 << 30
	// maxPayload bounds the payload length a record header may claim:
	// MaxBlobSize plus zstd framing and GCM overhead.
	maxPayload = MaxBlobSize + MaxBlobSize/64 + 1<<16
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errBadRecord marks a record whose bytes do not form a valid record
// (wrong magic, unknown version or flags, impossible lengths, CRC mismatch).
var errBadRecord = errors.New("bad record")

// recordHeader is the decoded fixed part of a record.
type recordHeader struct {
	flags      byte
	dictID     uint32
	id         [32]byte
	rawLen     uint64
	payloadLen uint32
	crc        uint32
}

// recordLen is the total on-disk length of the record.
func (h *recordHeader) recordLen() int64 { return recordHeaderSize + int64(h.payloadLen) }

// putHeader writes h (without the CRC) into b[:recordHeaderSize].
func putHeader(b []byte, h *recordHeader) {
	copy(b[0:4], recordMagic)
	b[4] = recordVersion
	b[5] = h.flags
	b[6], b[7] = 0, 0
	binary.LittleEndian.PutUint32(b[8:12], h.dictID)
	copy(b[12:44], h.id[:])
	binary.LittleEndian.PutUint64(b[44:52], h.rawLen)
	binary.LittleEndian.PutUint32(b[52:56], h.payloadLen)
}

// parseHeader decodes and sanity-checks a record header. It does not check
// the CRC, which also covers the payload.
func parseHeader(b []byte) (recordHeader, error) {
	var h recordHeader
	if len(b) < recordHeaderSize {
		return h, fmt.Errorf("%w: short header (%d bytes)", errBadRecord, len(b))
	}
	if string(b[0:4]) != recordMagic {
		return h, fmt.Errorf("%w: bad magic", errBadRecord)
	}
	if b[4] != recordVersion {
		return h, fmt.Errorf("%w: unknown record version %d", errBadRecord, b[4])
	}
	h.flags = b[5]
	if h.flags&^knownFlags != 0 || b[6] != 0 || b[7] != 0 {
		return h, fmt.Errorf("%w: unknown flags %#x", errBadRecord, b[5:8])
	}
	h.dictID = binary.LittleEndian.Uint32(b[8:12])
	copy(h.id[:], b[12:44])
	h.rawLen = binary.LittleEndian.Uint64(b[44:52])
	h.payloadLen = binary.LittleEndian.Uint32(b[52:56])
	h.crc = binary.LittleEndian.Uint32(b[56:60])
	if h.rawLen > MaxBlobSize {
		return h, fmt.Errorf("%w: raw length %d too large", errBadRecord, h.rawLen)
	}
	if h.payloadLen > maxPayload {
		return h, fmt.Errorf("%w: payload length %d too large", errBadRecord, h.payloadLen)
	}
	if h.flags&flagCompressed == 0 && h.flags&flagEncrypted == 0 && uint64(h.payloadLen) != h.rawLen {
		return h, fmt.Errorf("%w: plain payload length %d != raw length %d", errBadRecord, h.payloadLen, h.rawLen)
	}
	return h, nil
}

// checkCRC verifies the CRC of a whole record (header and payload).
func checkCRC(rec []byte, h *recordHeader) error {
	c := crc32.Update(0, castagnoli, rec[:56])
	c = crc32.Update(c, castagnoli, rec[recordHeaderSize:])
	if c != h.crc {
		return fmt.Errorf("%w: CRC mismatch", errBadRecord)
	}
	return nil
}

// codec turns blob bytes into record payloads and back. It is safe for
// concurrent use: zstd's EncodeAll/DecodeAll and a GCM AEAD are.
type codec struct {
	enc  *zstd.Encoder // nil = never compress
	dec  *zstd.Decoder
	aead cipher.AEAD // nil = no encryption
}

// encodeRecord appends the complete record for data (whose sha256 is id) to
// dst and returns the extended slice.
func (c *codec) encodeRecord(dst []byte, id [32]byte, data []byte) ([]byte, error) {
	return c.encodeRecordWith(c.enc, dst, id, data, false)
}

// encodeRecordWith is encodeRecord compressing with enc (nil: do not
// compress). The compressed form is kept only when it is smaller than data,
// unless force is set.
func (c *codec) encodeRecordWith(enc *zstd.Encoder, dst []byte, id [32]byte, data []byte, force bool) ([]byte, error) {
	start := len(dst)
	dst = append(dst, make([]byte, recordHeaderSize)...)
	h := recordHeader{id: id, rawLen: uint64(len(data))}
	payload := data
	if enc != nil {
		// Compress into the record buffer directly; keep it only if it saves space.
		withZ := enc.EncodeAll(data, dst)
		if z := withZ[len(dst):]; len(z) < len(data) || force {
			h.flags |= flagCompressed
			payload = z
			dst = withZ
		}
	}
	if c.aead != nil {
		h.flags |= flagEncrypted
		var plain []byte
		if h.flags&flagCompressed != 0 {
			// The compressed bytes already sit in dst; move them aside.
			plain = bytes.Clone(payload)
			dst = dst[:start+recordHeaderSize]
		} else {
			plain = data
		}
		h.payloadLen = uint32(gcmNonceSize + len(plain) + gcmTagSize)
		putHeader(dst[start:], &h)
		nonce := make([]byte, gcmNonceSize)
		if _, err := rand.Read(nonce); err != nil {
			return dst[:start], fmt.Errorf("store: nonce: %w", err)
		}
		var aad [56]byte
		copy(aad[:], dst[start:start+56])
		dst = append(dst, nonce...)
		dst = c.aead.Seal(dst, nonce, plain, aad[:])
	} else {
		if h.flags&flagCompressed == 0 {
			dst = append(dst, data...)
		}
		h.payloadLen = uint32(len(dst) - start - recordHeaderSize)
		putHeader(dst[start:], &h)
	}
	if int64(len(dst)-start) != h.recordLen() {
		return dst[:start], fmt.Errorf("store: internal error: record length %d != %d", len(dst)-start, h.recordLen())
	}
	rec := dst[start:]
	crc := crc32.Update(0, castagnoli, rec[:56])
	crc = crc32.Update(crc, castagnoli, rec[recordHeaderSize:])
	binary.LittleEndian.PutUint32(rec[56:60], crc)
	return dst, nil
}

// decodeRecord checks a complete record (CRC, authentication, decompression,
// length and sha256 against the id in the header) and returns its header and
// the blob bytes. It never panics and never allocates more than the header's
// (capped) raw length plus the record itself.
func (c *codec) decodeRecord(rec []byte) (recordHeader, []byte, error) {
	h, err := parseHeader(rec)
	if err != nil {
		return h, nil, err
	}
	if int64(len(rec)) != h.recordLen() {
		return h, nil, fmt.Errorf("%w: record is %d bytes, header says %d", errBadRecord, len(rec), h.recordLen())
	}
	if err := checkCRC(rec, &h); err != nil {
		return h, nil, err
	}
	if h.dictID != 0 {
		return h, nil, fmt.Errorf("%w: zstd dictionary %d is not available", errBadRecord, h.dictID)
	}
	payload := rec[recordHeaderSize:]
	if h.flags&flagEncrypted != 0 {
		if c.aead == nil {
			return h, nil, fmt.Errorf("%w: record is encrypted but the store has no key", errBadRecord)
		}
		if len(payload) < gcmNonceSize+gcmTagSize {
			return h, nil, fmt.Errorf("%w: encrypted payload too short", errBadRecord)
		}
		plain, err := c.aead.Open(nil, payload[:gcmNonceSize], payload[gcmNonceSize:], rec[:56])
		if err != nil {
			return h, nil, fmt.Errorf("%w: decrypt: %v", errBadRecord, err)
		}
		payload = plain
	} else if c.aead != nil {
		return h, nil, fmt.Errorf("%w: record is not encrypted in an encrypted store", errBadRecord)
	}
	var data []byte
	if h.flags&flagCompressed != 0 {
		var zh zstd.Header
		if err := zh.Decode(payload); err != nil {
			return h, nil, fmt.Errorf("%w: zstd header: %v", errBadRecord, err)
		}
		if zh.HasFCS && zh.FrameContentSize != h.rawLen {
			return h, nil, fmt.Errorf("%w: zstd content size %d != raw length %d", errBadRecord, zh.FrameContentSize, h.rawLen)
		}
		// The decoder is built with WithDecodeAllCapLimit, so it never
		// writes more than cap(dst) bytes.
		data, err = c.dec.DecodeAll(payload, make([]byte, 0, h.rawLen))
		if err != nil {
			return h, nil, fmt.Errorf("%w: decompress: %v", errBadRecord, err)
		}
	} else {
		// Plain payloads alias rec, which the caller owns.
		data = payload
	}
	if uint64(len(data)) != h.rawLen {
		return h, nil, fmt.Errorf("%w: decoded %d bytes, header says %d", errBadRecord, len(data), h.rawLen)
	}
	if sha256.Sum256(data) != h.id {
		return h, nil, fmt.Errorf("%w: content does not match its sha256 id", errBadRecord)
	}
	return h, data, nil
}

// fileHeader builds the 16-byte header of a pack, index or deletion-log file.
func fileHeader(magic string, packID uint32) []byte {
	b := make([]byte, fileHeaderSize)
	copy(b[0:4], magic)
	b[4] = fileVersion
	binary.LittleEndian.PutUint32(b[8:12], packID)
	binary.LittleEndian.PutUint32(b[12:16], crc32.Checksum(b[:12], castagnoli))
	return b
}

// parseFileHeader checks a file header and returns the pack id it names.
func parseFileHeader(b []byte, magic string) (uint32, error) {
	if len(b) < fileHeaderSize {
		return 0, fmt.Errorf("short file header (%d bytes)", len(b))
	}
	if string(b[0:4]) != magic {
		return 0, fmt.Errorf("bad file magic %q, want %q", b[0:4], magic)
	}
	if crc32.Checksum(b[:12], castagnoli) != binary.LittleEndian.Uint32(b[12:16]) {
		return 0, errors.New("file header CRC mismatch")
	}
	if b[4] != fileVersion {
		return 0, fmt.Errorf("unsupported file format version %d", b[4])
	}
	return binary.LittleEndian.Uint32(b[8:12]), nil
}

// idxEntry is one entry of a pack's index file.
type idxEntry struct {
	id     [32]byte
	off    int64
	recLen uint32
	rawLen uint32
}

func appendIdxEntry(dst []byte, e idxEntry) []byte {
	var b [idxEntrySize]byte
	copy(b[0:32], e.id[:])
	binary.LittleEndian.PutUint64(b[32:40], uint64(e.off))
	binary.LittleEndian.PutUint32(b[40:44], e.recLen)
	binary.LittleEndian.PutUint32(b[44:48], e.rawLen)
	binary.LittleEndian.PutUint32(b[48:52], crc32.Checksum(b[:48], castagnoli))
	return append(dst, b[:]...)
}

func parseIdxEntry(b []byte) (idxEntry, bool) {
	var e idxEntry
	if len(b) < idxEntrySize || crc32.Checksum(b[:48], castagnoli) != binary.LittleEndian.Uint32(b[48:52]) {
		return e, false
	}
	copy(e.id[:], b[0:32])
	off := binary.LittleEndian.Uint64(b[32:40])
	if off > 1<<62 {
		return e, false
	}
	e.off = int64(off)
	e.recLen = binary.LittleEndian.Uint32(b[40:44])
	e.rawLen = binary.LittleEndian.Uint32(b[44:48])
	if e.recLen < recordHeaderSize || e.rawLen > MaxBlobSize {
		return e, false
	}
	return e, true
}

// deadEntry is one entry of the deletion log: the record of blob id at
// (pack, off) is dead.
type deadEntry struct {
	pack uint32
	off  int64
	id   [32]byte
}

func appendDeadEntry(dst []byte, e deadEntry) []byte {
	var b [deadEntrySize]byte
	binary.LittleEndian.PutUint32(b[0:4], e.pack)
	binary.LittleEndian.PutUint64(b[4:12], uint64(e.off))
	copy(b[12:44], e.id[:])
	binary.LittleEndian.PutUint32(b[44:48], crc32.Checksum(b[:44], castagnoli))
	return append(dst, b[:]...)
}

func parseDeadEntry(b []byte) (deadEntry, bool) {
	var e deadEntry
	if len(b) < deadEntrySize || crc32.Checksum(b[:44], castagnoli) != binary.LittleEndian.Uint32(b[44:48]) {
		return e, false
	}
	e.pack = binary.LittleEndian.Uint32(b[0:4])
	off := binary.LittleEndian.Uint64(b[4:12])
	if off > 1<<62 {
		return e, false
	}
	e.off = int64(off)
	copy(e.id[:], b[12:44])
	return e, true
}
