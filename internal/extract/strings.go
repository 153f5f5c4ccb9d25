package extract

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

// minRun is the shortest run of characters kept by printable.
const minRun = 4

// printable is the best-effort extractor for legacy binary Office and
// Outlook files (OLE2 compound files: .doc, .xls, .ppt, .msg). It keeps runs
// of at least minRun characters that are printable either as 8-bit
// windows-1252 or as UTF-16LE (Latin, Greek, Cyrillic and general
// punctuation), which is how those formats store their text. Font names,
// style names and similar noise come along.
func (j *job) printable(data []byte) error {
	var b strings.Builder
	flush := func() error {
		err := j.out.WriteString(b.String())
		b.Reset()
		return err
	}
	for i := 0; i < len(data); {
		if i&0xFFFF == 0 {
			if err := j.check(); err != nil {
				return err
			}
		}
		if b.Len() > 32<<10 {
			if err := flush(); err != nil {
				return err
			}
		}
		if n := utf16Run(data[i:]); n >= minRun && wordy16(data[i:i+2*n]) {
			for k := 0; k < n; k++ {
				b.WriteRune(rune(data[i+2*k]) | rune(data[i+2*k+1])<<8)
			}
			b.WriteByte('\n')
			i += 2 * n
			continue
		}
		if n := byteRun(data[i:]); n >= minRun && wordy(data[i:i+n]) {
			for _, c := range data[i : i+n] {
				if c < utf8.RuneSelf {
					b.WriteByte(c)
				} else {
					b.WriteRune(charmap.Windows1252.DecodeByte(c))
				}
			}
			b.WriteByte('\n')
			i += n
			continue
		}
		i++
	}
	return flush()
}

// wordy reports whether a run looks like words rather than binary that
// happens to be printable: at least half of it ASCII letters, digits or
// spaces, with three letters or more.
func wordy(run []byte) bool {
	good, letters := 0, 0
	for _, c := range run {
		switch {
		case isASCIILetter(c):
			letters++
			good++
		case c == ' ' || (c >= '0' && c <= '9'):
			good++
		}
	}
	return letters >= 3 && 2*good >= len(run)
}

// wordy16 is wordy for UTF-16LE runs; non-ASCII letters count as letters.
func wordy16(run []byte) bool {
	good, letters := 0, 0
	for k := 0; k+1 < len(run); k += 2 {
		c, hi := run[k], run[k+1]
		switch {
		case hi != 0 || isASCIILetter(c) || c >= 0xc0:
			letters++
			good++
		case c == ' ' || (c >= '0' && c <= '9'):
			good++
		}
	}
	return letters >= 3 && 4*good >= len(run) // len is in bytes: half the characters
}

// textByte reports whether c is a plausible 8-bit text character.
func textByte(c byte) bool {
	return (c >= 0x20 && c < 0x7f) || c == '\t' || (c >= 0xa0 && c != 0xad && c != 0xff) || c == 0x92 || c == 0x93 ||
		c == 0x94 || c == 0x96 || c == 0x97
}

// byteRun returns the length of the run of text bytes at the start of b.
func byteRun(b []byte) int {
	n := 0
	for n < len(b) && textByte(b[n]) {
		n++
	}
	return n
}

// utf16Run returns the number of UTF-16LE text characters at the start of b.
func utf16Run(b []byte) int {
	n := 0
	for 2*n+1 < len(b) {
		lo, hi := b[2*n], b[2*n+1]
		ok := false
		switch hi {
		case 0x00:
			ok = (lo >= 0x20 && lo < 0x7f) || lo == '\t' || lo >= 0xa0
		case 0x01, 0x03, 0x04: // Latin Extended-A/B, Greek, Cyrillic
			ok = true
		case 0x20: // general punctuation: dashes, quotes, bullets
			ok = lo >= 0x10 && lo <= 0x3a
		}
		if !ok {
			break
		}
		n++
	}
	return n
}
