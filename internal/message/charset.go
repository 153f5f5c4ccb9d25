package message

import (
	"bytes"
	"encoding/base64"
	"io"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	gmcharset "github.com/emersion/go-message/charset"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
	"golang.org/x/text/encoding/unicode"
)

// csKind classifies a charset label.
type csKind int

const (
	csUTF8    csKind = iota // utf-8, us-ascii or no label: UTF-8 if valid, else windows-1252
	csEnc                   // a golang.org/x/text encoding
	csUTF7                  // UTF-7 (RFC 2152), decoded by decodeUTF7
	csUnknown               // unknown label: treated like csUTF8 and reported
)

// normCharset lowercases a charset label and strips quotes, spaces and any
// "*lang" suffix (RFC 2231 section 5).
func normCharset(name string) string {
	name = strings.ToLower(strings.Trim(strings.TrimSpace(name), "\"' "))
	if i := strings.IndexByte(name, '*'); i >= 0 {
		name = name[:i]
	}
	return name
}

// lookupCharset resolves a charset label. It knows the aliases seen in real
// mail that golang.org/x/text's indexes do not, then asks the WHATWG index and
// go-message's IANA-based lookup.
func lookupCharset(label string) (encoding.Encoding, csKind) {
	name := normCharset(label)
	switch name {
	case "", "utf-8", "utf8", "us-ascii", "ascii", "x-utf_8j", "unicode-1-1-utf-8", "ansi_x3.4-1968", "us":
		return nil, csUTF8
	case "utf-7", "utf7", "unicode-1-1-utf-7", "x-unicode-2-0-utf-7", "csunicode11utf7", "x-unicode-1-1-utf-7":
		return nil, csUTF7
	case "ks_c_5601-1987", "ks_c_5601-1989", "ks_c_5601", "ksc5601", "ksc_5601", "ks_c_5601_1987",
		"euc-kr", "euc_kr", "euckr", "cp949", "ms949", "windows-949", "x-windows-949", "uhc", "korean", "csksc56011987":
		return korean.EUCKR, csEnc
	case "gb2312", "gb_2312-80", "gb_2312", "csgb2312", "x-gbk", "gbk", "cp936", "ms936", "windows-936",
		"euc-cn", "x-euc-cn", "chinese", "gb18030", "x-gb18030", "iso-ir-58", "x-cp936":
		return simplifiedchinese.GB18030, csEnc
	case "hz-gb-2312", "hz":
		return simplifiedchinese.HZGB2312, csEnc
	case "big5", "big-5", "x-big5", "cn-big5", "big5-hkscs", "csbig5", "cp950", "ms950", "windows-950":
		return traditionalchinese.Big5, csEnc
	case "shift_jis", "shift-jis", "shiftjis", "sjis", "x-sjis", "x-shift_jis", "x-shift-jis", "ms_kanji",
		"cp932", "ms932", "windows-31j", "csshiftjis", "cswindows31j", "windows-932":
		return japanese.ShiftJIS, csEnc
	case "iso-2022-jp", "iso2022jp", "csiso2022jp", "iso-2022-jp-1", "iso-2022-jp-2", "iso-2022-jp-3", "x-iso-2022-jp":
		return japanese.ISO2022JP, csEnc
	case "euc-jp", "eucjp", "x-euc-jp", "cseucpkdfmtjapanese", "x-euc":
		return japanese.EUCJP, csEnc
	case "koi8-r", "koi8r", "cskoi8r", "koi", "koi8":
		return charmap.KOI8R, csEnc
	case "koi8-u", "koi8u", "koi8-ru":
		return charmap.KOI8U, csEnc
	case "iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "latin-1", "l1", "cp819", "ibm819", "iso-ir-100",
		"windows-1252", "cp1252", "x-cp1252", "cp-1252", "win-1252":
		// As browsers do: ISO-8859-1 labels are decoded as its superset windows-1252.
		return charmap.Windows1252, csEnc
	case "iso-8859-15", "iso8859-15", "iso_8859-15", "latin-9", "latin9":
		return charmap.ISO8859_15, csEnc
	case "utf-16", "utf16":
		return unicode.UTF16(unicode.BigEndian, unicode.UseBOM), csEnc
	case "utf-16le", "utf16le":
		return unicode.UTF16(unicode.LittleEndian, unicode.IgnoreBOM), csEnc
	case "utf-16be", "utf16be":
		return unicode.UTF16(unicode.BigEndian, unicode.IgnoreBOM), csEnc
	}
	if strings.HasPrefix(name, "cp125") || strings.HasPrefix(name, "win-125") || strings.HasPrefix(name, "x-cp125") {
		name = "windows-125" + name[len(name)-1:]
	}
	if e, err := htmlindex.Get(name); err == nil && e != nil {
		// The WHATWG "replacement" encoding (iso-2022-kr, ...) decodes
		// everything to one U+FFFD: worse than the fallback.
		if n, _ := htmlindex.Name(e); n != "replacement" {
			return e, csEnc
		}
	}
	return nil, csUnknown
}

// decodeCharset converts b from the named charset to valid UTF-8. known is
// false when the label was not recognised (the fallback was used).
func decodeCharset(b []byte, label string) (s string, known bool) {
	enc, kind := lookupCharset(label)
	switch kind {
	case csEnc:
		out, err := enc.NewDecoder().Bytes(b)
		if err != nil {
			return fallbackUTF8(b), true
		}
		return validUTF8(out), true
	case csUTF7:
		return decodeUTF7(b), true
	case csUnknown:
		// Last resort: go-message's IANA-based lookup (golang.org/x/text).
		if r, err := gmcharset.Reader(normCharset(label), bytes.NewReader(b)); err == nil {
			if out, err := io.ReadAll(r); err == nil {
				return validUTF8(out), true
			}
		}
		return fallbackUTF8(b), false
	}
	return fallbackUTF8(b), true
}

// fallbackUTF8 returns b as a string when it is valid UTF-8 and decodes it as
// windows-1252 otherwise.
func fallbackUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	out, err := charmap.Windows1252.NewDecoder().Bytes(b)
	if err != nil {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return string(out)
}

// fallbackUTF8String is fallbackUTF8 for strings; it does not copy valid input.
func fallbackUTF8String(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return fallbackUTF8([]byte(s))
}

// validUTF8 converts b to a string, replacing invalid sequences with U+FFFD.
func validUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// decodeUTF7 decodes UTF-7 (RFC 2152) on a best-effort basis: malformed
// shifted sequences are decoded as far as possible, never rejected.
func decodeUTF7(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b))
	for i := 0; i < len(b); {
		c := b[i]
		if c != '+' {
			if c < 0x80 {
				sb.WriteByte(c)
			} else {
				sb.WriteRune(utf8.RuneError)
			}
			i++
			continue
		}
		i++
		j := i
		for j < len(b) && isB64Char(b[j]) {
			j++
		}
		if j == i { // "+-" is a literal '+'; a lone '+' too
			sb.WriteByte('+')
			if j < len(b) && b[j] == '-' {
				j++
			}
			i = j
			continue
		}
		raw := b[i:j]
		if len(raw)%4 == 1 { // a single trailing sextet carries no whole byte
			raw = raw[:len(raw)-1]
		}
		buf := make([]byte, base64.RawStdEncoding.DecodedLen(len(raw)))
		n, _ := base64.RawStdEncoding.Decode(buf, raw)
		buf = buf[:n]
		units := make([]uint16, 0, len(buf)/2)
		for k := 0; k+1 < len(buf); k += 2 {
			units = append(units, uint16(buf[k])<<8|uint16(buf[k+1]))
		}
		sb.WriteString(string(utf16.Decode(units)))
		if j < len(b) && b[j] == '-' {
			j++
		}
		i = j
	}
	return sb.String()
}

// isB64Char reports whether c is in the standard base64 alphabet.
func isB64Char(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/'
}
