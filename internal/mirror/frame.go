package mirror

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame types of the peer protocol (see the package doc).
const (
	frameHello   byte = 'H' // JSON hello
	frameVerdict byte = 'V' // JSON verdict on the other side's hello or auth
	frameAuth    byte = 'A' // 32-byte HMAC proof
	frameLack    byte = 'L' // n*32 bytes: raw SHA-256 ids
	frameLackAns byte = 'l' // n bytes: lackHave, lackNeed or lackPurged per id
	framePut     byte = 'P' // id(32) uvarint(len meta) meta JSON, zstd data
	frameResult  byte = 'R' // id(32) result byte, reason text
	framePing    byte = 'N' // empty
	framePong    byte = 'n' // empty

	// Anti-entropy, user and tombstone exchange (antientropy.go).
	frameDigest    byte = 'D' // JSON {"keys":[...]}: children digests of these buckets
	frameDigestAns byte = 'd' // JSON [{"k","n","x"}]
	frameIDs       byte = 'I' // JSON {"keys":[...]}: ids of these leaf buckets
	frameIDsAns    byte = 'i' // n*32 bytes
	frameGet       byte = 'G' // n*32 bytes: send me these; answered by one P or R per id, in order
	frameTombs     byte = 'T' // n*32 bytes: ids tombstoned on the sender
	frameTombsAck  byte = 't' // empty
	frameUsers     byte = 'U' // JSON user records (see UserSync)
	frameUsersAns  byte = 'u' // JSON user records of the answering side
)

// handshakeMaxFrame caps frames before authentication: an unauthenticated
// peer cannot make us allocate more than this.
const handshakeMaxFrame = 64 << 10

// ErrFrameTooLarge is returned when a frame header announces more than the
// allowed size; the connection must be dropped.
var ErrFrameTooLarge = errors.New("mirror: frame too large")

// frame is one protocol unit: a type byte and a payload.
type frame struct {
	typ     byte
	payload []byte
}

// writeFrame writes type, uvarint length and payload to w.
func writeFrame(w io.Writer, typ byte, payload []byte) error {
	var hdr [1 + binary.MaxVarintLen64]byte
	hdr[0] = typ
	n := binary.PutUvarint(hdr[1:], uint64(len(payload)))
	if _, err := w.Write(hdr[:1+n]); err != nil {
		return fmt.Errorf("mirror: write frame: %w", err)
	}
	if len(payload) > 0 {
		if _, err := w.Write(payload); err != nil {
			return fmt.Errorf("mirror: write frame: %w", err)
		}
	}
	return nil
}

// readFrame reads one frame, refusing payloads above max bytes before
// allocating them.
func readFrame(r *bufio.Reader, max int) (frame, error) {
	typ, err := r.ReadByte()
	if err != nil {
		return frame{}, err
	}
	n, err := binary.ReadUvarint(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return frame{}, fmt.Errorf("mirror: frame header: %w", err)
	}
	if n > uint64(max) {
		return frame{}, fmt.Errorf("%w: %d bytes announced, limit %d", ErrFrameTooLarge, n, max)
	}
	p := make([]byte, int(n))
	if _, err := io.ReadFull(r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return frame{}, fmt.Errorf("mirror: frame payload: %w", err)
	}
	return frame{typ: typ, payload: p}, nil
}

// putMeta is the metadata travelling with a message in a put frame.
type putMeta struct {
	Origins  []string `json:"origins,omitempty"`
	MailFrom []string `json:"mail_from,omitempty"`
	RcptTo   []string `json:"rcpt_to,omitempty"`
	Arrival  int64    `json:"arrival,omitempty"` // unix nanoseconds on the sender
}

// maxMetaLen caps the JSON metadata of a put frame.
const maxMetaLen = 4 << 20

// encodePut builds a put payload: raw id, uvarint meta length, meta, data.
func encodePut(id [32]byte, meta, zdata []byte) []byte {
	out := make([]byte, 0, 32+binary.MaxVarintLen64+len(meta)+len(zdata))
	out = append(out, id[:]...)
	out = binary.AppendUvarint(out, uint64(len(meta)))
	out = append(out, meta...)
	return append(out, zdata...)
}

// decodePut splits a put payload. It never panics on malformed input.
func decodePut(p []byte) (id [32]byte, meta, zdata []byte, err error) {
	if len(p) < 33 {
		return id, nil, nil, errors.New("mirror: put frame too short")
	}
	copy(id[:], p[:32])
	n, k := binary.Uvarint(p[32:])
	if k <= 0 || n > maxMetaLen || n > uint64(len(p)-32-k) {
		return id, nil, nil, errors.New("mirror: put frame: bad metadata length")
	}
	start := 32 + k
	return id, p[start : start+int(n)], p[start+int(n):], nil
}

// Per-item push results, as the receiver answers them.
const (
	resStored   byte = 's' // stored durably now
	resHave     byte = 'h' // already held (also: sent twice by two lanes)
	resPurged   byte = 'p' // tombstoned on the receiver: not stored, done
	resRejected byte = 'x' // permanently refused (e.g. SHA-256 mismatch): parked
	resRetry    byte = 'r' // temporary failure: send again later
)

// resultName maps a result byte to its metrics/status name.
func resultName(b byte) string {
	switch b {
	case resStored:
		return "stored"
	case resHave:
		return "have"
	case resPurged:
		return "purged"
	case resRejected:
		return "rejected"
	case resRetry:
		return "retry"
	}
	return "unknown"
}

// encodeResult builds a result payload.
func encodeResult(id [32]byte, res byte, reason string) []byte {
	if len(reason) > 1000 {
		reason = reason[:1000]
	}
	out := make([]byte, 0, 33+len(reason))
	out = append(out, id[:]...)
	out = append(out, res)
	return append(out, reason...)
}

// decodeResult parses a result payload.
func decodeResult(p []byte) (id [32]byte, res byte, reason string, err error) {
	if len(p) < 33 {
		return id, 0, "", errors.New("mirror: result frame too short")
	}
	copy(id[:], p[:32])
	res = p[32]
	switch res {
	case resStored, resHave, resPurged, resRejected, resRetry:
	default:
		return id, 0, "", fmt.Errorf("mirror: unknown result %q", res)
	}
	return id, res, string(p[33:]), nil
}

// Answers to a lack query, one byte per id.
const (
	lackHave   byte = 0
	lackNeed   byte = 1
	lackPurged byte = 2
)
