package message

import (
	"bytes"
	"encoding/base64"
	"strings"
)

// Content-Transfer-Encodings known to decodeBody.
const (
	cteIdentity = iota
	cteBase64
	cteQP
	cteUnknown
)

// transferEncoding classifies a Content-Transfer-Encoding value.
func transferEncoding(v string) int {
	switch strings.ToLower(strings.Trim(strings.TrimSpace(stripComment(v)), "\"")) {
	case "", "7bit", "8bit", "binary", "7-bit", "8-bit", "none":
		return cteIdentity
	case "base64", "base-64", "x-base64":
		return cteBase64
	case "quoted-printable", "quotedprintable", "qp", "x-quoted-printable":
		return cteQP
	}
	return cteUnknown
}

// decodeBody decodes body according to cte. With out=false only the decoded
// size is computed (no allocation). bad reports malformed encoding (decoding
// went on as far as possible). For identity encodings data is body itself.
func decodeBody(body []byte, cte int, out bool) (data []byte, size int64, bad bool) {
	switch cte {
	case cteBase64:
		return decodeBase64(body, out)
	case cteQP:
		return decodeQP(body, out)
	}
	return body, int64(len(body)), false
}

// decodeBase64 decodes base64: well-formed input with the standard library
// decoder, anything else with decodeBase64Lenient. Sizing (out=false)
// counts well-formed input instead of decoding it (base64Size).
func decodeBase64(src []byte, out bool) (data []byte, size int64, bad bool) {
	if !out {
		if size, ok := base64Size(src); ok {
			return nil, size, false
		}
	}
	if data, size, ok := decodeBase64Strict(src, out); ok {
		return data, size, false
	}
	return decodeBase64Lenient(src, out)
}

// b64Body marks the bytes base64Size takes before the padding: 0 for the
// alphabet, CR and LF, 1 for any other (a lookup table, never written after
// initialisation).
var b64Body = func() (t [256]uint8) {
	for c := range 256 {
		if !isB64Char(byte(c)) && c != '\r' && c != '\n' {
			t[c] = 1
		}
	}
	return t
}()

// base64Size returns the decoded size of well-formed base64 without
// decoding it: alphabet characters and line ends, then at most the padding
// the last quantum needs (line ends may fall anywhere). That is the input
// the standard decoder takes whole, and its size is the formula below, which
// decodeBase64Lenient's agrees with; ok is false for anything else, which
// is then decoded to find its size (FuzzBase64Size compares the two).
func base64Size(src []byte) (size int64, ok bool) {
	// The tail: line ends and padding after the last alphabet character.
	end, pad := len(src), 0
	for ; end > 0; end-- {
		c := src[end-1]
		if c == '=' {
			pad++
		} else if c != '\r' && c != '\n' {
			break
		}
	}
	body := src[:end]
	var other uint8
	for _, c := range body {
		other |= b64Body[c]
	}
	if other != 0 {
		return 0, false
	}
	n := len(body) - bytes.Count(body, []byte{'\n'}) - bytes.Count(body, []byte{'\r'})
	switch r := n % 4; {
	case r == 0 && pad == 0, r == 2 && pad == 2, r == 3 && pad == 1:
		return int64(n/4*3 + max(r-1, 0)), true
	}
	return 0, false
}

// base64Chunk is the input chunk size of decodeBase64Strict.
const base64Chunk = 64 << 10

// decodeBase64Strict is the fast path for well-formed base64 (the standard
// decoder skips CR and LF). It works in chunks cut at line ends so that
// sizing (out=false) needs only a small scratch buffer; ok is false when the
// input is not strictly valid, including a chunk that does not hold whole
// quanta.
func decodeBase64Strict(src []byte, out bool) (data []byte, size int64, ok bool) {
	var dst, scratch []byte
	if out {
		dst = make([]byte, base64.StdEncoding.DecodedLen(len(src)))
	}
	for len(src) > 0 {
		end := len(src)
		if end > base64Chunk {
			end = base64Chunk
			if nl := bytes.IndexByte(src[end:], '\n'); nl >= 0 {
				end += nl + 1
			} else {
				end = len(src)
			}
		}
		var n int
		var err error
		if out {
			n, err = base64.StdEncoding.Decode(dst[size:], src[:end])
		} else {
			if need := base64.StdEncoding.DecodedLen(end); cap(scratch) < need {
				scratch = make([]byte, need)
			}
			n, err = base64.StdEncoding.Decode(scratch[:cap(scratch)], src[:end])
		}
		if err != nil {
			return nil, 0, false
		}
		size += int64(n)
		src = src[end:]
	}
	if out {
		return dst[:size], size, true
	}
	return nil, size, true
}

// decodeBase64Lenient decodes base64 leniently: bytes outside the alphabet
// (line breaks, spaces, garbage) are skipped, '=' ends a quantum and decoding
// continues after it (concatenated base64 blobs), a dangling single sextet is
// dropped. It is linear and, with out=false, allocation-free.
func decodeBase64Lenient(src []byte, out bool) (data []byte, size int64, bad bool) {
	var dst []byte
	if out {
		dst = make([]byte, 0, len(src)/4*3+3)
	}
	var stage [4096]byte
	k := 0 // chars staged in the current '='-delimited segment (mod len(stage))
	seg := 0
	flush := func(final bool) {
		// Decode the staged chars; keep an incomplete quantum unless final.
		n := k
		if !final {
			n = k - k%4
		}
		if out && n > 0 {
			full := n - n%4
			var tmp [3072]byte
			m, err := base64.StdEncoding.Decode(tmp[:], stage[:full])
			if err != nil {
				bad = true
			}
			dst = append(dst, tmp[:m]...)
			if r := n % 4; r >= 2 {
				var q [3]byte
				m, err := base64.RawStdEncoding.Decode(q[:], stage[full:n])
				if err != nil {
					bad = true
				}
				dst = append(dst, q[:m]...)
			}
		}
		copy(stage[:], stage[n:k])
		k -= n
	}
	for _, c := range src {
		if isB64Char(c) {
			stage[k] = c
			k++
			seg++
			if k == len(stage) {
				flush(false)
			}
			continue
		}
		switch c {
		case '\r', '\n', ' ', '\t':
			continue
		case '=':
			if seg > 0 {
				if seg%4 == 1 {
					bad = true
				}
				size += int64(seg/4*3 + max(seg%4-1, 0))
				flush(true)
				k, seg = 0, 0
			}
			continue
		}
		bad = true
	}
	if seg%4 == 1 {
		bad = true
	}
	size += int64(seg/4*3 + max(seg%4-1, 0))
	flush(true)
	if out {
		return dst, int64(len(dst)), bad
	}
	return nil, size, bad
}

// decodeQP decodes quoted-printable leniently: "=XX" (either case) is a byte,
// "=" before a line break (optionally after trailing white space) is a soft
// break, any other "=" stays literal.
func decodeQP(src []byte, out bool) (data []byte, size int64, bad bool) {
	var dst []byte
	if out {
		dst = make([]byte, 0, len(src))
	}
	for len(src) > 0 {
		i := bytes.IndexByte(src, '=')
		if i < 0 {
			size += int64(len(src))
			if out {
				dst = append(dst, src...)
			}
			break
		}
		size += int64(i)
		if out {
			dst = append(dst, src[:i]...)
		}
		src = src[i+1:]
		if len(src) >= 2 {
			h, ok1 := unhex(src[0])
			l, ok2 := unhex(src[1])
			if ok1 && ok2 {
				size++
				if out {
					dst = append(dst, h<<4|l)
				}
				src = src[2:]
				continue
			}
		}
		// Soft line break, possibly with (illegal) trailing white space.
		j := 0
		for j < len(src) && (src[j] == ' ' || src[j] == '\t') {
			j++
		}
		if j < len(src) && src[j] == '\n' {
			src = src[j+1:]
			continue
		}
		if j+1 < len(src) && src[j] == '\r' && src[j+1] == '\n' {
			src = src[j+2:]
			continue
		}
		if j == len(src) { // "=" at the very end
			src = src[j:]
			continue
		}
		bad = true
		size++
		if out {
			dst = append(dst, '=')
		}
	}
	if out {
		return dst, int64(len(dst)), bad
	}
	return nil, size, bad
}
