package extract

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/htmlindex"
)

// maxXMLDepth bounds element nesting in XML parts; real documents stay far
// below it, hostile ones are cut off before the nesting costs memory.
const maxXMLDepth = 1000

// xmlSpec says which parts of an XML vocabulary are text. Element names are
// local names (without prefix).
type xmlSpec struct {
	text  set               // character data counts only inside these; nil: everywhere
	skip  set               // subtrees ignored entirely
	block set               // a line break before and after
	tab   set               // a tab at the start (table cells, tab characters)
	brk   set               // a line break at the start (line breaks inside a paragraph)
	space set               // a space at the start (ODF <text:s/>)
	attrs map[string]string // element -> attribute whose value is text (e.g. sheet names)
	// sheet enables the spreadsheet rule: <v> is text unless its <c> cell
	// has t="s" (a shared-string index, whose text comes from sharedStrings).
	sheet bool
}

type set map[string]bool

func newSet(names ...string) set {
	s := make(set, len(names))
	for _, n := range names {
		s[n] = true
	}
	return s
}

// xmlText streams the XML document r into f according to spec.
func (j *job) xmlText(r io.Reader, spec *xmlSpec, f *flow) error {
	d := xml.NewDecoder(r)
	d.Strict = false
	d.Entity = xml.HTMLEntity
	d.CharsetReader = charsetReader
	var (
		depth     int
		skipAt    int // depth of the skipped subtree's root, 0 when not skipping
		textDepth int // number of open text elements
		cellType  string
		vIsIndex  bool
		n         int
	)
	for {
		n++
		if n%512 == 0 {
			if err := j.check(); err != nil {
				return err
			}
		}
		tok, err := d.RawToken()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return fmt.Errorf("%w: xml: %v", ErrCorrupt, err)
			}
			return err // limit errors from the member reader, etc.
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth > maxXMLDepth {
				return fmt.Errorf("%w: xml nesting deeper than %d", ErrLimit, maxXMLDepth)
			}
			if skipAt > 0 {
				continue
			}
			name := t.Name.Local
			if spec.skip[name] {
				skipAt = depth
				continue
			}
			switch {
			case spec.block[name]:
				f.block()
			case spec.tab[name]:
				f.tab()
			case spec.brk[name]:
				f.block()
			case spec.space[name]:
				f.space = true
			}
			if a, ok := spec.attrs[name]; ok {
				for _, at := range t.Attr {
					if at.Name.Local == a && at.Value != "" {
						if err := f.text(at.Value, false); err != nil {
							return err
						}
						f.block()
					}
				}
			}
			if spec.sheet {
				switch name {
				case "c":
					cellType = ""
					for _, at := range t.Attr {
						if at.Name.Local == "t" {
							cellType = at.Value
						}
					}
				case "v":
					vIsIndex = cellType == "s"
				}
			}
			if spec.text[name] && !(name == "v" && vIsIndex) {
				textDepth++
			}
		case xml.EndElement:
			if depth > 0 {
				depth--
			}
			if skipAt > 0 {
				if depth < skipAt {
					skipAt = 0
				}
				continue
			}
			name := t.Name.Local
			if spec.text[name] && textDepth > 0 && !(name == "v" && vIsIndex) {
				textDepth--
			}
			if name == "v" {
				vIsIndex = false
			}
			if spec.block[name] {
				f.block()
			}
		case xml.CharData:
			if skipAt > 0 || (spec.text != nil && textDepth == 0) {
				continue
			}
			if err := f.text(string(t), false); err != nil {
				return err
			}
		}
	}
}

// xmlAll extracts the character data of a generic XML document.
func (j *job) xmlAll(data []byte) error {
	f := flow{write: j.out.WriteString}
	spec := &xmlSpec{skip: newSet("script", "style")}
	if !utf8.Valid(data) && !bytes.Contains(firstN(data, 200), []byte("encoding=")) &&
		!bytes.HasPrefix(data, []byte{0xFF, 0xFE}) && !bytes.HasPrefix(data, []byte{0xFE, 0xFF}) {
		// Undeclared 8-bit text: read it as windows-1252 like other text.
		data = []byte(decodeCP1252(data))
	}
	start := j.out.Len()
	err := j.xmlText(bytes.NewReader(data), spec, &f)
	if errors.Is(err, ErrCorrupt) && strings.TrimSpace(j.out.since(start)) == "" {
		// Not well-formed enough for encoding/xml: index it as text.
		return j.out.WriteString(decodeText(data, ""))
	}
	return err
}

// charsetReader lets encoding/xml read documents that declare a non-UTF-8
// encoding.
func charsetReader(label string, input io.Reader) (io.Reader, error) {
	enc, err := htmlindex.Get(strings.ToLower(strings.TrimSpace(label)))
	if err != nil {
		return nil, fmt.Errorf("xml charset %q: %w", label, err)
	}
	return enc.NewDecoder().Reader(input), nil
}
