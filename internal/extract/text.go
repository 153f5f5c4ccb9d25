package extract

import (
	"bytes"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/htmlindex"
)

// decodeText converts text bytes to UTF-8: a UTF-16 or UTF-8 byte order mark
// wins, then valid UTF-8 is taken as is, then the declared charset (when
// known), else windows-1252.
func decodeText(data []byte, charset string) string {
	switch {
	case bytes.HasPrefix(data, []byte{0xEF, 0xBB, 0xBF}):
		return strings.ToValidUTF8(string(data[3:]), "\uFFFD")
	case bytes.HasPrefix(data, []byte{0xFF, 0xFE}):
		return decodeUTF16(data[2:], false)
	case bytes.HasPrefix(data, []byte{0xFE, 0xFF}):
		return decodeUTF16(data[2:], true)
	}
	if utf8.Valid(data) {
		return string(data)
	}
	if enc := lookupCharset(charset); enc != nil {
		if s, err := enc.NewDecoder().Bytes(data); err == nil {
			return string(s)
		}
	}
	return decodeCP1252(data)
}

// lookupCharset returns the decoder for a charset label, or nil when the
// label is empty, unknown, or names UTF-8 (whose invalid bytes we then read as
// windows-1252 instead).
func lookupCharset(label string) encoding.Encoding {
	label = strings.ToLower(strings.TrimSpace(label))
	if label == "" || label == "utf-8" || label == "utf8" || label == "us-ascii" {
		return nil
	}
	enc, err := htmlindex.Get(label)
	if err != nil {
		return nil
	}
	if n, _ := htmlindex.Name(enc); n == "utf-8" {
		return nil
	}
	return enc
}

// decodeCP1252 decodes windows-1252 (a superset of ISO-8859-1's printable
// range, which is what mislabeled 8-bit text usually is).
func decodeCP1252(data []byte) string {
	var b strings.Builder
	b.Grow(len(data) + len(data)/4)
	for _, c := range data {
		if c < utf8.RuneSelf {
			b.WriteByte(c)
			continue
		}
		b.WriteRune(charmap.Windows1252.DecodeByte(c))
	}
	return b.String()
}

// decodeUTF16 decodes UTF-16 without its BOM; an odd trailing byte is
// dropped, unpaired surrogates become U+FFFD.
func decodeUTF16(data []byte, bigEndian bool) string {
	u := make([]uint16, len(data)/2)
	for i := range u {
		if bigEndian {
			u[i] = uint16(data[2*i])<<8 | uint16(data[2*i+1])
		} else {
			u[i] = uint16(data[2*i]) | uint16(data[2*i+1])<<8
		}
	}
	return string(utf16.Decode(u))
}
