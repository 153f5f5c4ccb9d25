package extract

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// TNEF attribute ids (low 16 bits of the attribute tag), [MS-OXTNEF] 2.1.3.
const (
	attSubject        = 0x8004
	attBody           = 0x800C
	attAttachData     = 0x800F
	attAttachTitle    = 0x8010
	attAttachRendData = 0x9002
	attMAPIProps      = 0x9003
	attAttachment     = 0x9005
	attOEMCodePage    = 0x9007
)

// MAPI property ids and types used here.
const (
	prSubject        = 0x0037
	prOrigSubject    = 0x0049
	prTopic          = 0x0070 // PR_CONVERSATION_TOPIC
	prBody           = 0x1000
	prRTFCompressed  = 0x1009
	prBodyHTML       = 0x1013
	prAttachDataBin  = 0x3701 // also PR_ATTACH_DATA_OBJ (type object)
	prAttachFilename = 0x3704
	prAttachLongName = 0x3707
	prAttachMimeTag  = 0x370E

	ptString8 = 0x001E
	ptUnicode = 0x001F
	ptBinary  = 0x0102
	ptObject  = 0x000D
)

// maxTNEFItems bounds attributes, properties and attachments per stream.
const maxTNEFItems = 10000

type tnefAttachment struct {
	name, mimeType string
	data           []byte
}

type tnefMessage struct {
	subject  string
	body     string // plain text body
	rtf      []byte // compressed RTF body
	html     []byte
	codePage int
	attach   []*tnefAttachment
	embedded [][]byte // TNEF streams of attached messages
}

// tnef extracts a TNEF (winmail.dat) stream: subject, body and attachments.
func (j *job) tnef(data []byte, depth int) error {
	if depth >= j.lim.MaxDepth {
		return fmt.Errorf("%w: tnef nested deeper than %d", ErrLimit, j.lim.MaxDepth)
	}
	m, perr := parseTNEF(data)
	if m == nil {
		return perr
	}
	var errs []error
	if perr != nil {
		errs = append(errs, perr)
	}
	if m.subject != "" {
		if err := j.out.WriteString(m.subject + "\n"); err != nil {
			return err
		}
	}
	switch {
	case strings.TrimSpace(m.body) != "":
		if err := j.out.WriteString(m.body); err != nil {
			return err
		}
	case len(m.rtf) > 0:
		raw, err := j.decompressRTF(m.rtf)
		if err == nil {
			err = j.rtf(raw)
		}
		if errors.Is(err, errTextFull) || j.ctx.Err() != nil {
			return err
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("tnef rtf body: %w", err))
		}
	case len(m.html) > 0:
		if err := j.html(decodeText(m.html, "")); err != nil {
			return err
		}
	}
	for i, a := range m.attach {
		if err := j.check(); err != nil {
			return err
		}
		name := a.name
		if name == "" {
			name = fmt.Sprintf("attachment %d", i+1)
		}
		if err := j.out.Newline(); err != nil {
			return err
		}
		if err := j.out.WriteString(name + "\n"); err != nil {
			return err
		}
		if len(a.data) == 0 {
			continue
		}
		err := j.extract(name, a.mimeType, a.data, depth+1)
		if stop, e := j.memberErr(name, err); stop {
			return errors.Join(append(errs, e)...)
		} else if e != nil {
			errs = append(errs, e)
		}
	}
	for _, e := range m.embedded {
		if err := j.out.Newline(); err != nil {
			return err
		}
		err := j.tnef(e, depth+1)
		if stop, e := j.memberErr("embedded message", err); stop {
			return errors.Join(append(errs, e)...)
		} else if e != nil {
			errs = append(errs, e)
		}
	}
	return errors.Join(errs...)
}

// parseTNEF reads the attributes of a TNEF stream. On a format error it
// returns what was read so far together with the error; m is nil only when
// the stream is not TNEF at all.
func parseTNEF(b []byte) (*tnefMessage, error) {
	if len(b) < 6 || binary.LittleEndian.Uint32(b) != 0x223E9F78 {
		return nil, fmt.Errorf("%w: tnef: bad signature", ErrCorrupt)
	}
	m := &tnefMessage{}
	var cur *tnefAttachment
	pos := 6
	for n := 0; pos < len(b); n++ {
		if n >= maxTNEFItems {
			return m, fmt.Errorf("%w: tnef: more than %d attributes", ErrLimit, maxTNEFItems)
		}
		if len(b)-pos < 9 {
			return m, nil // a few bytes of padding or garbage after the last attribute
		}
		level := b[pos]
		tag := binary.LittleEndian.Uint32(b[pos+1:])
		size := binary.LittleEndian.Uint32(b[pos+5:])
		pos += 9
		if uint64(size) > uint64(len(b)-pos) {
			return m, fmt.Errorf("%w: tnef: attribute %#x longer than the stream", ErrCorrupt, tag)
		}
		val := b[pos : pos+int(size)]
		pos += int(size) + 2 // value and checksum
		id := tag & 0xFFFF
		if level == 2 {
			if id == attAttachRendData || cur == nil {
				if len(m.attach) >= maxTNEFItems {
					return m, fmt.Errorf("%w: tnef: too many attachments", ErrLimit)
				}
				cur = &tnefAttachment{}
				m.attach = append(m.attach, cur)
			}
			switch id {
			case attAttachTitle:
				if cur.name == "" {
					cur.name = cString(val)
				}
			case attAttachData:
				cur.data = val
			case attAttachment:
				props, _ := parseMAPIProps(val)
				for _, p := range props {
					switch p.id {
					case prAttachLongName:
						cur.name = p.str()
					case prAttachFilename:
						if cur.name == "" {
							cur.name = p.str()
						}
					case prAttachMimeTag:
						cur.mimeType = p.str()
					case prAttachDataBin:
						if p.typ == ptObject && len(p.val) > 16 {
							inner := p.val[16:] // after the interface id
							if len(inner) >= 4 && binary.LittleEndian.Uint32(inner) == 0x223E9F78 {
								m.embedded = append(m.embedded, inner)
								continue
							}
						}
						if len(cur.data) == 0 {
							cur.data = p.val
						}
					}
				}
			}
			continue
		}
		switch id {
		case attSubject:
			m.subject = strings.TrimSpace(decodeText([]byte(cString(val)), ""))
		case attBody:
			m.body = decodeText(val, "")
		case attOEMCodePage:
			if len(val) >= 4 {
				m.codePage = int(binary.LittleEndian.Uint32(val))
			}
		case attMAPIProps:
			props, _ := parseMAPIProps(val)
			for _, p := range props {
				switch p.id {
				case prSubject, prOrigSubject, prTopic:
					if m.subject == "" {
						m.subject = strings.TrimSpace(p.str())
					}
				case prBody:
					if m.body == "" {
						m.body = p.str()
					}
				case prRTFCompressed:
					m.rtf = p.val
				case prBodyHTML:
					m.html = p.val
				}
			}
		}
	}
	return m, nil
}

// cString returns b up to its first NUL.
func cString(b []byte) string {
	if i := indexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

type mapiProp struct {
	typ, id uint16
	val     []byte // the first value (strings, binary) or raw fixed value
}

// str returns a string property's value as UTF-8.
func (p mapiProp) str() string {
	switch p.typ {
	case ptUnicode:
		return strings.TrimRight(decodeUTF16(p.val, false), "\x00")
	default:
		return decodeText([]byte(cString(p.val)), "")
	}
}

// parseMAPIProps decodes an attMAPIProps/attAttachment value
// ([MS-OXTNEF] 2.1.3.4). It stops at the first value it cannot decode and
// returns the properties read until then.
func parseMAPIProps(b []byte) ([]mapiProp, error) {
	errShort := fmt.Errorf("%w: tnef: truncated MAPI properties", ErrCorrupt)
	if len(b) < 4 {
		return nil, errShort
	}
	count := binary.LittleEndian.Uint32(b)
	pos := 4
	need := func(n int) bool { return n >= 0 && len(b)-pos >= n }
	var props []mapiProp
	for i := uint32(0); i < count && i < maxTNEFItems; i++ {
		if !need(4) {
			return props, errShort
		}
		typ := binary.LittleEndian.Uint16(b[pos:])
		id := binary.LittleEndian.Uint16(b[pos+2:])
		pos += 4
		if id >= 0x8000 { // named property: GUID, kind, then id or name
			if !need(20) {
				return props, errShort
			}
			kind := binary.LittleEndian.Uint32(b[pos+16:])
			pos += 20
			if kind == 0 {
				if !need(4) {
					return props, errShort
				}
				pos += 4
			} else {
				if !need(4) {
					return props, errShort
				}
				n := int(binary.LittleEndian.Uint32(b[pos:]))
				pos += 4
				if !need(pad4(n)) {
					return props, errShort
				}
				pos += pad4(n)
			}
		}
		multi := typ&0x1000 != 0
		base := typ &^ 0x3000
		values := 1
		variable := base == ptString8 || base == ptUnicode || base == ptBinary || base == ptObject
		if multi || variable {
			if !need(4) {
				return props, errShort
			}
			values = int(binary.LittleEndian.Uint32(b[pos:]))
			pos += 4
			if values < 0 || values > len(b) {
				return props, errShort
			}
		}
		p := mapiProp{typ: base, id: id}
		for v := 0; v < values; v++ {
			var size int
			if variable {
				if !need(4) {
					return props, errShort
				}
				n := int(binary.LittleEndian.Uint32(b[pos:]))
				pos += 4
				if n < 0 || !need(n) {
					return props, errShort
				}
				if v == 0 {
					p.val = b[pos : pos+n]
				}
				size = pad4(n)
				if !need(size) {
					size = n
				}
			} else {
				size = fixedMAPISize(base)
				if size < 0 {
					return props, fmt.Errorf("%w: tnef: unknown MAPI type %#x", ErrCorrupt, base)
				}
				if !need(size) {
					return props, errShort
				}
				if v == 0 {
					p.val = b[pos : pos+size]
				}
			}
			pos += size
		}
		props = append(props, p)
	}
	return props, nil
}

func pad4(n int) int { return (n + 3) &^ 3 }

// fixedMAPISize is the encoded size of a fixed-length MAPI value, -1 for
// unknown types.
func fixedMAPISize(t uint16) int {
	switch t {
	case 0x0001: // PT_NULL
		return 4
	case 0x0002, 0x0003, 0x0004, 0x000A, 0x000B: // short, long, float, error, boolean (padded)
		return 4
	case 0x0005, 0x0006, 0x0007, 0x0014, 0x0040: // double, currency, apptime, int64, systime
		return 8
	case 0x0048: // CLSID
		return 16
	}
	return -1
}

// rtfPrebuf is the dictionary preset of compressed RTF ([MS-OXRTFCP] 2.1.2.1).
const rtfPrebuf = "{\\rtf1\\ansi\\mac\\deff0\\deftab720{\\fonttbl;}{\\f0\\fnil \\froman \\fswiss \\fmodern \\fscript \\fdecor MS Sans SerifSymbolArialTimes New RomanCourier{\\colortbl\\red0\\green0\\blue0\r\n\\par \\pard\\plain\\f0\\fs20\\b\\i\\u\\tab\\tx"

// decompressRTF decodes PR_RTF_COMPRESSED ([MS-OXRTFCP]), charging the
// output to the expansion budget.
func (j *job) decompressRTF(b []byte) ([]byte, error) {
	if len(b) < 16 {
		return nil, fmt.Errorf("%w: compressed rtf: short header", ErrCorrupt)
	}
	rawSize := int64(binary.LittleEndian.Uint32(b[4:]))
	magic := binary.LittleEndian.Uint32(b[8:])
	limit := min(rawSize, j.lim.MaxInput, j.lim.MaxExpand-j.expanded)
	if limit < 0 {
		limit = 0
	}
	src := b[16:]
	switch magic {
	case 0x414C454D: // "MELA": stored uncompressed
		if int64(len(src)) > limit {
			src = src[:limit]
		}
		j.expanded += int64(len(src))
		return src, nil
	case 0x75465A4C: // "LZFu"
	default:
		return nil, fmt.Errorf("%w: compressed rtf: unknown type %#x", ErrCorrupt, magic)
	}
	var dict [4096]byte
	copy(dict[:], rtfPrebuf)
	wp := len(rtfPrebuf)
	out := make([]byte, 0, min(limit, 1<<20))
	pos := 0
	for pos < len(src) && int64(len(out)) < limit {
		flags := src[pos]
		pos++
		for bit := 0; bit < 8 && pos < len(src) && int64(len(out)) < limit; bit++ {
			if flags&(1<<bit) == 0 {
				c := src[pos]
				pos++
				out = append(out, c)
				dict[wp] = c
				wp = (wp + 1) & 4095
				continue
			}
			if pos+2 > len(src) {
				pos = len(src)
				break
			}
			ref := int(src[pos])<<8 | int(src[pos+1])
			pos += 2
			off, n := ref>>4, ref&0xF+2
			if off == wp {
				pos = len(src) // end marker
				break
			}
			for k := 0; k < n; k++ {
				c := dict[(off+k)&4095]
				out = append(out, c)
				dict[wp] = c
				wp = (wp + 1) & 4095
			}
		}
	}
	j.expanded += int64(len(out))
	if j.expanded > j.lim.MaxExpand {
		return out, fmt.Errorf("%w: more than %d bytes decompressed", ErrLimit, j.lim.MaxExpand)
	}
	return out, nil
}
