package message

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
)

// Normalize returns raw with every bare LF (an LF not preceded by CR) turned
// into CRLF; all other bytes are unchanged (NULs, 8-bit bytes and lone CRs
// stay). It returns raw itself when nothing changes, so the result may share
// memory with raw.
func Normalize(raw []byte) []byte {
	// Up to the first bare LF nothing changes; most messages either have
	// none (CRLF throughout) or are all bare LFs (files on disk).
	i := 0
	for {
		j := bytes.IndexByte(raw[i:], '\n')
		if j < 0 {
			return raw
		}
		i += j
		if i == 0 || raw[i-1] != '\r' {
			break
		}
		i++
	}
	// One pass: room for a CR every 32 bytes covers most text, and append
	// grows the rest.
	out := make([]byte, 0, len(raw)+len(raw)/32+16)
	out = append(out, raw[:i]...)
	start := i
	for start < len(raw) {
		j := bytes.IndexByte(raw[start:], '\n')
		if j < 0 {
			out = append(out, raw[start:]...)
			break
		}
		lf := start + j
		if lf == 0 || raw[lf-1] != '\r' {
			out = append(out, raw[start:lf]...)
			out = append(out, '\r', '\n')
		} else {
			out = append(out, raw[start:lf+1]...)
		}
		start = lf + 1
	}
	return out
}

// ID returns the lowercase hex SHA-256 of b. Callers pass normalised bytes
// (see Normalize), so that the id of a message does not depend on the line
// endings of the channel that delivered it.
func ID(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// ValidID reports whether s has the form of a message id: exactly 64
// lowercase hexadecimal characters.
func ValidID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
