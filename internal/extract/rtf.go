package extract

import (
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
	"golang.org/x/text/encoding/unicode"
)

// maxRTFDepth bounds group nesting; deeper groups are skipped.
const maxRTFDepth = 512

// rtfSkipDestinations hold no document text (tables, pictures, binary
// objects, field instructions, metadata).
var rtfSkipDestinations = map[string]bool{
	"colortbl": true, "stylesheet": true, "info": true, "pict": true, "objdata": true,
	"objclass": true, "objname": true, "themedata": true, "colorschememapping": true,
	"datastore": true, "latentstyles": true, "listtable": true, "listoverridetable": true,
	"rsidtbl": true, "generator": true, "xmlnstbl": true, "mmathPr": true, "pgdsctbl": true,
	"filetbl": true, "revtbl": true, "fldinst": true, "datafield": true, "bkmkstart": true,
	"bkmkend": true, "nonshppict": true, "sp": true, "sn": true, "sv": true, "blipuid": true,
	"passwordhash": true, "protusertbl": true, "userprops": true, "docvar": true,
	"listtext": true, "pntext": true, "pntxta": true, "pntxtb": true, "wgrffmtfilter": true,
	"xmlopen": true, "xmlclose": true, "fontemb": true, "fontfile": true, "falt": true,
	"panose": true, "template": true, "formfield": true, "ffdeftext": true,
	"operator": true, "company": true, "author": true, "title": true, "subject": true,
	"keywords": true, "comment": true, "doccomm": true, "hlinkbase": true,
}

// rtfSymbols are control words that stand for text.
var rtfSymbols = map[string]string{
	"par": "\n", "line": "\n", "row": "\n", "sect": "\n", "page": "\n", "outlinelevel": "",
	"tab": "\t", "cell": "\t", "nestcell": "\t", "emdash": "\u2014", "endash": "\u2013",
	"emspace": " ", "enspace": " ", "qmspace": " ", "bullet": "\u2022", "lquote": "\u2018",
	"rquote": "\u2019", "ldblquote": "\u201c", "rdblquote": "\u201d", "zwj": "", "zwnj": "",
}

// rtfCharsetCodePage maps \fcharsetN to a Windows code page.
var rtfCharsetCodePage = map[int]int{
	0: 1252, 77: 10000, 128: 932, 129: 949, 130: 949, 134: 936, 136: 950, 161: 1253,
	162: 1254, 163: 1258, 177: 1255, 178: 1256, 186: 1257, 204: 1251, 222: 874, 238: 1250,
	254: 437, 255: 850,
}

// codePage returns the decoder for a Windows code page, nil for unknown ones.
func codePage(cp int) encoding.Encoding {
	switch cp {
	case 1250:
		return charmap.Windows1250
	case 1251:
		return charmap.Windows1251
	case 1252:
		return charmap.Windows1252
	case 1253:
		return charmap.Windows1253
	case 1254:
		return charmap.Windows1254
	case 1255:
		return charmap.Windows1255
	case 1256:
		return charmap.Windows1256
	case 1257:
		return charmap.Windows1257
	case 1258:
		return charmap.Windows1258
	case 874:
		return charmap.Windows874
	case 437:
		return charmap.CodePage437
	case 850:
		return charmap.CodePage850
	case 866:
		return charmap.CodePage866
	case 10000:
		return charmap.Macintosh
	case 932:
		return japanese.ShiftJIS
	case 936:
		return simplifiedchinese.GBK
	case 949:
		return korean.EUCKR
	case 950:
		return traditionalchinese.Big5
	case 65001:
		return unicode.UTF8
	}
	return nil
}

// rtfState is the part of the RTF parser state scoped to a group.
type rtfState struct {
	skip     bool // inside a destination without text
	fonttbl  bool // inside the font table
	htmlSkip bool // \htmlrtf: RTF-only content of encapsulated HTML
	uc       int  // characters to skip after \uN
	cp       int  // code page for \'hh and 8-bit bytes
}

// rtfParser converts RTF to text.
type rtfParser struct {
	data     []byte
	pos      int
	out      strings.Builder
	pending  []byte // 8-bit bytes waiting to be decoded (multi-byte code pages)
	pendCP   int
	high     rune // a pending UTF-16 high surrogate from \uN
	ucSkip   int
	docCP    int
	fonts    map[int]int // font number -> code page
	curFont  int         // font being defined in the font table
	st       rtfState
	stack    []rtfState
	overflow int // groups opened beyond maxRTFDepth
	// groupStart is true right after '{': "\*" there marks an ignorable
	// destination; elsewhere (a writer's quirk) it is ignored.
	groupStart bool
}

// rtf extracts the text of an RTF document into the job's text.
func (j *job) rtf(data []byte) error {
	p := &rtfParser{data: data, docCP: 1252, fonts: map[int]int{}}
	p.st = rtfState{uc: 1, cp: 1252}
	return p.run(func() error {
		err := j.out.WriteString(p.out.String())
		p.out.Reset()
		if err != nil {
			return err
		}
		return j.check()
	})
}

// rtfToText converts a whole RTF document, for tests and fuzzing.
func rtfToText(data []byte) string {
	p := &rtfParser{data: data, docCP: 1252, fonts: map[int]int{}}
	p.st = rtfState{uc: 1, cp: 1252}
	var b strings.Builder
	_ = p.run(func() error { b.WriteString(p.out.String()); p.out.Reset(); return nil })
	return clean(b.String())
}

// run parses the document, calling flush whenever some text accumulated;
// flush may stop the parse by returning an error.
func (p *rtfParser) run(flush func() error) error {
	if !strings.HasPrefix(string(p.data[:min(len(p.data), 8)]), "{\\rtf") {
		return fmt.Errorf("%w: rtf: missing {\\rtf header", ErrCorrupt)
	}
	for p.pos < len(p.data) {
		if p.out.Len() >= 32<<10 {
			p.flushBytes()
			if err := flush(); err != nil {
				return err
			}
		}
		c := p.data[p.pos]
		p.pos++
		if c != '\\' && c != '\r' && c != '\n' {
			p.groupStart = c == '{'
		}
		switch c {
		case '{':
			p.flushBytes()
			if len(p.stack) >= maxRTFDepth {
				p.overflow++
				continue
			}
			p.stack = append(p.stack, p.st)
			p.ucSkip = 0
		case '}':
			p.flushBytes()
			p.ucSkip = 0
			if p.overflow > 0 {
				p.overflow--
				continue
			}
			if n := len(p.stack); n > 0 {
				p.st = p.stack[n-1]
				p.stack = p.stack[:n-1]
			}
		case '\\':
			p.control()
		case '\r', '\n', 0:
			// Line breaks in RTF source are not text.
		default:
			if p.overflow > 0 || p.st.skip || p.st.fonttbl || p.st.htmlSkip {
				continue
			}
			if p.ucSkip > 0 {
				p.ucSkip--
				continue
			}
			p.addByte(c)
		}
	}
	p.flushBytes()
	return flush()
}

// control handles one control word or symbol; p.pos is just after the
// backslash.
func (p *rtfParser) control() {
	if p.pos >= len(p.data) {
		return
	}
	c := p.data[p.pos]
	if !isASCIILetter(c) {
		p.pos++
		p.symbol(c)
		if c != '*' {
			p.groupStart = false
		}
		return
	}
	p.groupStart = false
	start := p.pos
	for p.pos < len(p.data) && p.pos-start < 32 && isASCIILetter(p.data[p.pos]) {
		p.pos++
	}
	word := string(p.data[start:p.pos])
	hasParam, neg, param := false, false, 0
	if p.pos < len(p.data) && p.data[p.pos] == '-' {
		neg = true
		p.pos++
	}
	digits := 0
	for p.pos < len(p.data) && p.data[p.pos] >= '0' && p.data[p.pos] <= '9' {
		if digits < 10 {
			param = param*10 + int(p.data[p.pos]-'0')
		}
		digits++
		hasParam = true
		p.pos++
	}
	if neg {
		param = -param
	}
	if p.pos < len(p.data) && p.data[p.pos] == ' ' {
		p.pos++ // the delimiter space belongs to the control word
	}
	p.word(word, hasParam, param)
}

func isASCIILetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// symbol handles a control symbol (backslash + one non-letter).
func (p *rtfParser) symbol(c byte) {
	switch c {
	case '\'':
		if p.pos+2 > len(p.data) {
			p.pos = len(p.data)
			return
		}
		hi, ok1 := unhex(p.data[p.pos])
		lo, ok2 := unhex(p.data[p.pos+1])
		p.pos += 2
		if !ok1 || !ok2 || p.overflow > 0 || p.st.skip || p.st.fonttbl || p.st.htmlSkip {
			return
		}
		if p.ucSkip > 0 {
			p.ucSkip--
			return
		}
		p.addByte(hi<<4 | lo)
		return
	case '*':
		// An ignorable destination: nothing we extract is marked so.
		if p.overflow == 0 && p.groupStart {
			p.st.skip = true
		}
		return
	}
	p.flushBytes()
	if p.ucSkip > 0 {
		p.ucSkip--
		return
	}
	switch c {
	case '\\', '{', '}':
		p.text(string(c))
	case '~':
		p.text("\u00a0")
	case '_':
		p.text("-")
	case '\r', '\n':
		p.text("\n")
	case '\t':
		p.text("\t")
	}
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// word handles a control word.
func (p *rtfParser) word(w string, hasParam bool, param int) {
	p.flushBytes()
	if w == "bin" {
		// Binary data of the given length follows; skip it whatever the state.
		if hasParam && param > 0 {
			p.pos += min(param, len(p.data)-p.pos)
		}
		return
	}
	if p.overflow > 0 {
		return
	}
	if p.ucSkip > 0 && w != "u" {
		p.ucSkip--
		return
	}
	switch w {
	case "fonttbl":
		p.st.fonttbl = true
		return
	case "ansicpg":
		if hasParam && codePage(param) != nil {
			p.docCP = param
			p.st.cp = param
		}
		return
	case "f":
		if p.st.fonttbl {
			p.curFont = param
			return
		}
		if cp, ok := p.fonts[param]; ok {
			p.st.cp = cp
		} else {
			p.st.cp = p.docCP
		}
		return
	case "fcharset":
		if p.st.fonttbl && len(p.fonts) < 4096 {
			cp, ok := rtfCharsetCodePage[param]
			if !ok || param == 0 {
				cp = p.docCP
			}
			p.fonts[p.curFont] = cp
		}
		return
	case "cpg":
		if p.st.fonttbl && codePage(param) != nil && len(p.fonts) < 4096 {
			p.fonts[p.curFont] = param
		}
		return
	case "uc":
		if hasParam && param >= 0 && param < 16 {
			p.st.uc = param
		}
		return
	case "u":
		if !hasParam {
			return
		}
		if !(p.overflow > 0 || p.st.skip || p.st.fonttbl || p.st.htmlSkip) {
			p.unicode(param)
		}
		p.ucSkip = p.st.uc
		return
	case "htmlrtf":
		p.st.htmlSkip = !hasParam || param != 0
		return
	}
	if rtfSkipDestinations[w] {
		p.st.skip = true
		return
	}
	if s, ok := rtfSymbols[w]; ok {
		p.text(s)
	}
}

// unicode writes the character of \uN, pairing UTF-16 surrogates.
func (p *rtfParser) unicode(n int) {
	if n < 0 {
		n += 65536
	}
	r := rune(n)
	switch {
	case utf16.IsSurrogate(r) && r < 0xDC00:
		p.high = r
		return
	case utf16.IsSurrogate(r):
		if p.high != 0 {
			r = utf16.DecodeRune(p.high, r)
		} else {
			r = utf8.RuneError
		}
	case r > 0xFFFF:
		r = utf8.RuneError
	}
	p.high = 0
	p.textRune(r)
}

func (p *rtfParser) text(s string) {
	if p.overflow > 0 || p.st.skip || p.st.fonttbl || p.st.htmlSkip {
		return
	}
	p.out.WriteString(s)
}

func (p *rtfParser) textRune(r rune) {
	p.out.WriteRune(r)
}

// addByte queues an 8-bit character for decoding in the current code page.
func (p *rtfParser) addByte(b byte) {
	if len(p.pending) > 0 && p.pendCP != p.st.cp {
		p.flushBytes()
	}
	p.pendCP = p.st.cp
	p.pending = append(p.pending, b)
	if len(p.pending) >= 4096 {
		p.flushBytes()
	}
}

// flushBytes decodes the queued 8-bit characters.
func (p *rtfParser) flushBytes() {
	if len(p.pending) == 0 {
		return
	}
	enc := codePage(p.pendCP)
	if enc == nil {
		enc = charmap.Windows1252
	}
	if s, err := enc.NewDecoder().Bytes(p.pending); err == nil {
		p.out.Write(s)
	} else {
		p.out.WriteString(decodeCP1252(p.pending))
	}
	p.pending = p.pending[:0]
}
