package extract

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ledongthuc/pdf"
)

// Limits inside the PDF walker.
const (
	maxPDFPages     = 100000 // pages looked at
	maxPDFFormDepth = 4      // nesting of form XObjects
	maxPDFForms     = 200    // form XObjects drawn per page
)

// pdfAbort is panicked from inside the library's interpreter callback to
// stop it (deadline, text limit); it is recovered by pdfPage.
type pdfAbort struct{ err error }

// pdf extracts the text of a PDF. The library's reader does the parsing
// (xref, object streams, filters, font encodings and ToUnicode maps); our
// own walker over each page's content stream adds word and line breaks from
// the text positioning operators and follows form XObjects. When the library
// cannot open the file or finds no text, a scrape of the raw content streams
// is tried instead.
func (j *job) pdf(data []byte) error {
	start := j.out.Len()
	libErr := j.pdfLibrary(data)
	if strings.TrimSpace(j.out.since(start)) != "" {
		return libErr // text found; a failing page is still reported
	}
	if errors.Is(libErr, errTextFull) || j.ctx.Err() != nil {
		return libErr
	}
	scrapeErr := j.pdfScrape(data)
	if errors.Is(scrapeErr, errTextFull) || j.ctx.Err() != nil {
		return scrapeErr
	}
	if libErr != nil && strings.TrimSpace(j.out.since(start)) == "" {
		return errors.Join(libErr, scrapeErr)
	}
	return nil // a PDF without text (scanned pages) is not an error
}

// pdfLibrary extracts text with github.com/ledongthuc/pdf.
func (j *job) pdfLibrary(data []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if a, ok := r.(pdfAbort); ok {
				err = a.err
				return
			}
			err = fmt.Errorf("%w: pdf: parser panic: %v", ErrCorrupt, r)
		}
	}()
	data = pdfNormalize(data)
	r, err := pdf.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return fmt.Errorf("%w: pdf: %v", ErrCorrupt, err)
	}
	n := r.NumPage()
	if n > maxPDFPages {
		n = maxPDFPages
	}
	var errs []error
	for i := 1; i <= n; i++ {
		if err := j.check(); err != nil {
			return err
		}
		text, err := j.pdfPage(r.Page(i))
		if err != nil {
			if errors.Is(err, errTextFull) || j.ctx.Err() != nil {
				return err
			}
			if len(errs) < 10 {
				errs = append(errs, fmt.Errorf("page %d: %w", i, err))
			}
		}
		if err := j.out.Newline(); err != nil {
			return err
		}
		if err := j.out.WriteString(text); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

// pdfNormalize works around the library's strict checks of the file's
// framing: the header must be "%PDF-1.[0-7]" plus a line break at offset 0
// and "%%EOF" must end the file. Readers such as poppler accept a header
// later in the file (wrappers like AppleSingle), PDF 2.0 and trailing junk;
// so do we, on a copy when a change is needed.
func pdfNormalize(data []byte) []byte {
	if i := bytes.Index(firstN(data, 1024), []byte("%PDF-")); i > 0 {
		data = data[i:] // offsets in a PDF count from its header
	}
	if i := bytes.LastIndex(data, []byte("%%EOF")); i >= 0 && len(bytes.TrimRight(data[i+5:], "\r\n\t \x00")) > 0 {
		data = data[:i+5]
	}
	h := firstN(data, 9)
	if len(h) == 9 && !(bytes.HasPrefix(h, []byte("%PDF-1.")) && h[7] >= '0' && h[7] <= '7' && (h[8] == '\r' || h[8] == '\n')) {
		patched := bytes.Clone(data)
		copy(patched, "%PDF-1.7\n")
		data = patched
	}
	return data
}

// pdfWalker collects the text of one page.
type pdfWalker struct {
	j     *job
	b     strings.Builder
	ops   int
	forms int
	last  byte // last byte written
}

// pdfPage returns the text of one page; a panic in the library while
// interpreting it becomes an error, keeping the text found so far.
func (j *job) pdfPage(p pdf.Page) (text string, err error) {
	w := &pdfWalker{j: j}
	defer func() {
		if r := recover(); r != nil {
			text = w.b.String()
			if a, ok := r.(pdfAbort); ok {
				err = a.err
				return
			}
			err = fmt.Errorf("%w: pdf page: parser panic: %v", ErrCorrupt, r)
		}
	}()
	if p.V.IsNull() {
		return "", nil
	}
	contents := p.V.Key("Contents")
	if contents.IsNull() {
		return "", nil
	}
	w.walk(contents, p.Resources(), 0)
	return w.b.String(), nil
}

// pdfFont is a font of the page with what the walker needs to estimate
// glyph advances.
type pdfFont struct {
	f      *pdf.Font
	enc    pdf.TextEncoding
	twoB   bool            // Type0 (CID) font: two-byte codes
	widths map[int]float64 // CID widths from W, in 1/1000 em
	dw     float64         // default CID width
	first  int             // simple fonts: code of simple[0]
	simple []float64       // simple fonts: Widths, in 1/1000 em
}

func newPDFFont(v pdf.Value) *pdfFont {
	pf := &pdfFont{f: &pdf.Font{V: v}, dw: 1000}
	if v.IsNull() {
		return pf
	}
	pf.enc = pf.f.Encoder()
	if v.Key("Subtype").Name() != "Type0" {
		// Resolve the widths once: every Key lookup re-reads objects.
		pf.first = int(v.Key("FirstChar").Int64())
		wa := v.Key("Widths")
		for i := 0; i < wa.Len() && i < 256; i++ {
			pf.simple = append(pf.simple, wa.Index(i).Float64())
		}
		return pf
	}
	{
		pf.twoB = true
		d := v.Key("DescendantFonts").Index(0)
		if dw := d.Key("DW"); !dw.IsNull() {
			pf.dw = dw.Float64()
		}
		pf.widths = map[int]float64{}
		wa := d.Key("W")
		for i := 0; i+1 < wa.Len() && len(pf.widths) < 65536; {
			first := int(wa.Index(i).Int64())
			next := wa.Index(i + 1)
			if next.Kind() == pdf.Array {
				for k := 0; k < next.Len() && k < 65536; k++ {
					pf.widths[first+k] = next.Index(k).Float64()
				}
				i += 2
				continue
			}
			if i+2 >= wa.Len() {
				break
			}
			last, wd := int(next.Int64()), wa.Index(i+2).Float64()
			for c := first; c <= last && c-first < 65536; c++ {
				pf.widths[c] = wd
			}
			i += 3
		}
	}
	return pf
}

// advance returns the width of the shown string raw in text space units
// (1/1000 em summed over its glyphs).
func (pf *pdfFont) advance(raw string) float64 {
	var sum float64
	if pf.twoB {
		for i := 0; i+1 < len(raw); i += 2 {
			c := int(raw[i])<<8 | int(raw[i+1])
			if wd, ok := pf.widths[c]; ok {
				sum += wd
			} else {
				sum += pf.dw
			}
		}
		return sum
	}
	for i := 0; i < len(raw); i++ {
		wd := 0.0
		if k := int(raw[i]) - pf.first; k >= 0 && k < len(pf.simple) {
			wd = pf.simple[k]
		}
		if wd <= 0 {
			wd = 500 // an average glyph when the font has no widths
		}
		sum += wd
	}
	return sum
}

// walk interprets one content stream (or array of streams), tracking the
// text position well enough to tell glyphs of one word from a word gap and
// a new line.
func (w *pdfWalker) walk(strm, resources pdf.Value, depth int) {
	fonts := map[string]*pdfFont{}
	font := newPDFFont(pdf.Value{})
	var (
		size         = 1.0 // Tf size
		sx, sy       = 1.0, 1.0
		lineX, lineY float64 // start of the current line (text line matrix)
		endX, lastY  float64 // where the last shown text ended
		leading      float64
	)
	em := func() float64 {
		e := size * sx
		if e < 0 {
			e = -e
		}
		if e == 0 {
			e = 1
		}
		return e
	}
	// moveTo decides the separator before text shown at (x, y).
	moveTo := func(x, y float64) {
		h := size * sy
		if h < 0 {
			h = -h
		}
		if h == 0 {
			h = 1
		}
		dy := y - lastY
		if dy < 0 {
			dy = -dy
		}
		switch {
		case dy > 0.5*h:
			w.nl()
		case x-endX > 0.15*em() || endX-x > em():
			w.space()
		}
		lineX, lineY, endX, lastY = x, y, x, y
	}
	show := func(raw string) {
		if font.enc != nil {
			w.text(font.enc.Decode(raw))
		} else {
			w.text(raw)
		}
		endX += font.advance(raw) / 1000 * em()
	}
	pdf.Interpret(strm, func(stk *pdf.Stack, op string) {
		w.ops++
		if w.ops%1024 == 0 {
			if err := w.j.ctx.Err(); err != nil {
				panic(pdfAbort{err})
			}
			if w.b.Len() > w.j.lim.MaxText {
				panic(pdfAbort{errTextFull})
			}
		}
		args := make([]pdf.Value, stk.Len())
		for i := len(args) - 1; i >= 0; i-- {
			args[i] = stk.Pop()
		}
		switch op {
		case "Tf":
			if len(args) < 2 {
				return
			}
			name := args[0].Name()
			f, ok := fonts[name]
			if !ok {
				f = newPDFFont(resources.Key("Font").Key(name))
				fonts[name] = f
			}
			font = f
			size = args[1].Float64()
		case "TL":
			if len(args) == 1 {
				leading = args[0].Float64()
			}
		case "BT":
			// The text matrix restarts at the identity; the separator is
			// decided by the next positioning operator against endX/lastY.
			sx, sy = 1, 1
			lineX, lineY = 0, 0
		case "Td", "TD":
			if len(args) == 2 {
				tx, ty := args[0].Float64(), args[1].Float64()
				if op == "TD" {
					leading = -ty
				}
				moveTo(lineX+tx*sx, lineY+ty*sy)
			}
		case "Tm":
			if len(args) == 6 {
				sx, sy = args[0].Float64(), args[3].Float64()
				if sx == 0 { // rotated text: use the other diagonal
					sx, sy = args[1].Float64(), args[2].Float64()
				}
				moveTo(args[4].Float64(), args[5].Float64())
			}
		case "T*":
			w.nl()
			moveTo(lineX, lineY-leading*sy)
		case "'", "\"":
			w.nl()
			moveTo(lineX, lineY-leading*sy)
			if len(args) > 0 {
				show(args[len(args)-1].RawString())
			}
		case "Tj":
			if len(args) == 1 {
				show(args[0].RawString())
			}
		case "TJ":
			if len(args) != 1 {
				return
			}
			v := args[0]
			for i := 0; i < v.Len(); i++ {
				x := v.Index(i)
				switch x.Kind() {
				case pdf.String:
					show(x.RawString())
				case pdf.Integer, pdf.Real:
					n := x.Float64()
					endX -= n / 1000 * em()
					if n < -180 { // a gap wider than a typical space
						w.space()
					}
				}
			}
		case "Do":
			if len(args) != 1 || depth >= maxPDFFormDepth || w.forms >= maxPDFForms {
				return
			}
			xo := resources.Key("XObject").Key(args[0].Name())
			if xo.Key("Subtype").Name() != "Form" {
				return
			}
			w.forms++
			res := xo.Key("Resources")
			if res.IsNull() {
				res = resources
			}
			w.space()
			w.walk(xo, res, depth+1)
			w.space()
		}
	})
}

func (w *pdfWalker) space() {
	if w.b.Len() > 0 && w.last != ' ' && w.last != '\n' {
		w.b.WriteByte(' ')
		w.last = ' '
	}
}

func (w *pdfWalker) nl() {
	if w.b.Len() > 0 && w.last != '\n' {
		w.b.WriteByte('\n')
		w.last = '\n'
	}
}

// text writes shown text.
func (w *pdfWalker) text(s string) {
	if s != "" {
		w.b.WriteString(s)
		w.last = s[len(s)-1]
	}
}

// pdfScrape is the fallback: it inflates every stream of the file and pulls
// the strings shown by the text operators (Tj, TJ, ', "), decoded as
// windows-1252. It cannot map glyphs of embedded fonts without the
// library's help, so strings that do not look like text are dropped.
func (j *job) pdfScrape(data []byte) error {
	rest := data
	found := false
	for {
		if err := j.check(); err != nil {
			return err
		}
		i := bytes.Index(rest, []byte("stream"))
		if i < 0 {
			break
		}
		rest = rest[i+len("stream"):]
		if bytes.HasPrefix(rest, []byte("\r\n")) {
			rest = rest[2:]
		} else if bytes.HasPrefix(rest, []byte("\n")) || bytes.HasPrefix(rest, []byte("\r")) {
			rest = rest[1:]
		} else {
			continue // "endstream" or the word inside other data
		}
		end := bytes.Index(rest, []byte("endstream"))
		if end < 0 {
			end = len(rest)
		}
		raw := rest[:end]
		rest = rest[end:]
		content := raw
		if zr, err := zlib.NewReader(bytes.NewReader(raw)); err == nil {
			br := &boundedReader{j: j, r: zr, name: "pdf stream", compressed: int64(len(raw)), limit: j.lim.MaxInput}
			inflated, err := io.ReadAll(br)
			if errors.Is(err, ErrLimit) {
				return err
			}
			content = inflated // possibly partial: a truncated stream still has text
		}
		if !bytes.Contains(content, []byte("T")) {
			continue
		}
		text := scrapeContent(content)
		if strings.TrimSpace(text) == "" {
			continue
		}
		found = true
		if err := j.out.Newline(); err != nil {
			return err
		}
		if err := j.out.WriteString(text); err != nil {
			return err
		}
	}
	if !found {
		return fmt.Errorf("%w: pdf: no text found in content streams", ErrCorrupt)
	}
	return nil
}

// scrapeContent tokenises a content stream just enough to find the string
// operands of the text-showing operators.
func scrapeContent(c []byte) string {
	var out strings.Builder
	var operands []string // strings since the last operator
	var arrayGap bool     // a large negative number inside a TJ array
	write := func(s string) {
		if printableRatio(s) >= 0.8 {
			out.WriteString(decodeCP1252([]byte(s)))
		}
	}
	for i := 0; i < len(c); {
		ch := c[i]
		switch {
		case ch == '(':
			s, n := pdfLiteral(c[i:])
			if arrayGap && len(operands) > 0 {
				operands = append(operands, " ")
			}
			arrayGap = false
			operands = append(operands, s)
			i += n
		case ch == '<' && i+1 < len(c) && c[i+1] != '<':
			end := bytes.IndexByte(c[i:], '>')
			if end < 0 {
				return out.String()
			}
			operands = append(operands, pdfHex(c[i+1:i+end]))
			i += end + 1
		case ch == '%':
			for i < len(c) && c[i] != '\n' && c[i] != '\r' {
				i++
			}
		case ch == '-' || ch == '.' || (ch >= '0' && ch <= '9'):
			j := i + 1
			for j < len(c) && (c[j] == '.' || (c[j] >= '0' && c[j] <= '9')) {
				j++
			}
			if v, err := strconv.ParseFloat(string(c[i:j]), 64); err == nil && v < -180 {
				arrayGap = true // a word gap inside a TJ array
			}
			i = j
		case isASCIILetter(ch) || ch == '\'' || ch == '"' || ch == '*':
			j := i + 1
			for j < len(c) && (isASCIILetter(c[j]) || c[j] == '*') {
				j++
			}
			op := string(c[i:j])
			switch op {
			case "Tj", "TJ", "'", "\"":
				if op != "Tj" && op != "TJ" {
					out.WriteByte('\n')
				}
				write(strings.Join(operands, ""))
			case "Td", "TD", "Tm", "ET":
				out.WriteByte(' ')
			case "T*":
				out.WriteByte('\n')
			}
			operands = operands[:0]
			arrayGap = false
			i = j
		default:
			i++
		}
	}
	return out.String()
}

func printableRatio(s string) float64 {
	if s == "" {
		return 0
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c >= 0x20 && c < 0x7f) || c == '\t' || c == '\n' || c >= 0xa0 {
			n++
		}
	}
	return float64(n) / float64(len(s))
}

// pdfLiteral decodes a literal string starting at c[0] == '(' and returns it
// with the number of bytes consumed.
func pdfLiteral(c []byte) (string, int) {
	var b []byte
	depth := 0
	for i := 0; i < len(c); i++ {
		ch := c[i]
		switch ch {
		case '(':
			depth++
			if depth > 1 {
				b = append(b, ch)
			}
		case ')':
			depth--
			if depth == 0 {
				return string(b), i + 1
			}
			b = append(b, ch)
		case '\\':
			i++
			if i >= len(c) {
				return string(b), i
			}
			switch e := c[i]; e {
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'b', 'f':
			case '\r', '\n':
				if e == '\r' && i+1 < len(c) && c[i+1] == '\n' {
					i++
				}
			default:
				if e >= '0' && e <= '7' {
					v := 0
					k := 0
					for k < 3 && i+k < len(c) && c[i+k] >= '0' && c[i+k] <= '7' {
						v = v*8 + int(c[i+k]-'0')
						k++
					}
					i += k - 1
					b = append(b, byte(v))
				} else {
					b = append(b, e)
				}
			}
		default:
			b = append(b, ch)
		}
	}
	return string(b), len(c)
}

// pdfHex decodes the inside of a hex string.
func pdfHex(h []byte) string {
	var b []byte
	var hi byte
	half := false
	for _, ch := range h {
		v, ok := unhex(ch)
		if !ok {
			continue
		}
		if half {
			b = append(b, hi<<4|v)
		} else {
			hi = v
		}
		half = !half
	}
	if half {
		b = append(b, hi<<4)
	}
	return string(b)
}
