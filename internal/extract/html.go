package extract

import (
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// HTMLToText returns the visible text of an HTML document or fragment:
// entities decoded, the content of script, style, head (including title),
// template and similar elements dropped, runs of white space collapsed
// (except inside pre), block-level elements and <br> turned into line breaks
// and table cells separated by tabs. It never fails; broken markup yields the
// text the tokenizer can find. The result is never much longer than the input.
func HTMLToText(s string) string {
	var b strings.Builder
	b.Grow(len(s) / 2)
	f := flow{write: func(t string) error { b.WriteString(t); return nil }}
	_ = htmlText(strings.NewReader(s), &f, nil)
	return clean(b.String())
}

// html extracts an HTML attachment into the job's text.
func (j *job) html(s string) error {
	f := flow{write: j.out.WriteString}
	return htmlText(strings.NewReader(s), &f, j.check)
}

// skipElements hold text that is not visible content.
var skipElements = map[atom.Atom]bool{
	atom.Script: true, atom.Style: true, atom.Head: true, atom.Title: true, atom.Template: true,
	atom.Noembed: true, atom.Noframes: true, atom.Iframe: true, atom.Object: true,
	atom.Svg: true, atom.Math: true, atom.Select: true,
}

// headElements may appear in <head>; any other start tag (or visible text)
// ends an unclosed head implicitly, as an HTML parser would.
var headElements = map[atom.Atom]bool{
	atom.Title: true, atom.Meta: true, atom.Link: true, atom.Style: true, atom.Script: true,
	atom.Base: true, atom.Noscript: true, atom.Template: true,
}

// blockElements start and end a line.
var blockElements = map[atom.Atom]bool{
	atom.Address: true, atom.Article: true, atom.Aside: true, atom.Blockquote: true,
	atom.Body: true, atom.Br: true, atom.Caption: true, atom.Center: true, atom.Dd: true,
	atom.Details: true, atom.Dialog: true, atom.Dir: true, atom.Div: true, atom.Dl: true,
	atom.Dt: true, atom.Fieldset: true, atom.Figcaption: true, atom.Figure: true,
	atom.Footer: true, atom.Form: true, atom.H1: true, atom.H2: true, atom.H3: true,
	atom.H4: true, atom.H5: true, atom.H6: true, atom.Header: true, atom.Hr: true,
	atom.Html: true, atom.Legend: true, atom.Li: true, atom.Main: true, atom.Menu: true,
	atom.Nav: true, atom.Ol: true, atom.P: true, atom.Pre: true, atom.Section: true,
	atom.Summary: true, atom.Table: true, atom.Tbody: true, atom.Tfoot: true,
	atom.Thead: true, atom.Tr: true, atom.Ul: true, atom.Option: true,
}

// htmlText streams the tokens of an HTML document into f. check, when not
// nil, is consulted every few hundred tokens.
func htmlText(r *strings.Reader, f *flow, check func() error) error {
	z := html.NewTokenizer(r)
	z.SetMaxBuf(0)
	var (
		skipDepth int       // >0 inside a skipped element
		skipTag   atom.Atom // the element that started skipping
		headChild atom.Atom // inside <head>: the open title/style/script/... element
		pre       int
		n         int
	)
	for {
		n++
		if check != nil && n%256 == 0 {
			if err := check(); err != nil {
				return err
			}
		}
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return nil // io.EOF or a tokenizer error: done either way
		case html.TextToken:
			text := string(z.Text())
			if skipDepth > 0 {
				if skipTag != atom.Head || headChild != 0 || strings.TrimSpace(text) == "" {
					continue
				}
				skipDepth = 0 // visible text: the head was never closed
			}
			if err := f.text(text, pre > 0); err != nil {
				return err
			}
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			name, _ := z.TagName()
			a := atom.Lookup(name)
			if skipDepth > 0 && skipTag == atom.Head {
				switch {
				case headChild != 0:
					if a == headChild && tt == html.EndTagToken {
						headChild = 0
					}
					continue
				case tt == html.EndTagToken:
					if a == atom.Head || a == atom.Html || a == atom.Body {
						skipDepth = 0
					}
					continue
				case headElements[a]:
					if tt == html.StartTagToken && a != atom.Meta && a != atom.Link && a != atom.Base {
						headChild = a
					}
					continue
				}
				// Any other element belongs to the body: the head ended.
				skipDepth = 0
			}
			if skipDepth > 0 {
				if a == skipTag {
					switch tt {
					case html.StartTagToken:
						skipDepth++
					case html.EndTagToken:
						skipDepth--
					}
				}
				continue
			}
			if tt == html.StartTagToken && skipElements[a] {
				skipDepth, skipTag, headChild = 1, a, 0
				continue
			}
			switch {
			case a == atom.Pre && tt == html.StartTagToken:
				pre++
			case a == atom.Pre && tt == html.EndTagToken && pre > 0:
				pre--
			}
			switch {
			case a == atom.Td || a == atom.Th:
				if tt != html.EndTagToken {
					f.tab()
				}
			case a == atom.Img && tt != html.EndTagToken:
				// The alt text of images is part of what a reader sees.
				if alt := attr(z, "alt"); alt != "" {
					if err := f.text(" "+alt+" ", false); err != nil {
						return err
					}
				}
			case blockElements[a]:
				f.block()
			}
		}
	}
}

// attr returns the value of the named attribute of the current tag.
func attr(z *html.Tokenizer, key string) string {
	for {
		k, v, more := z.TagAttr()
		if string(k) == key {
			return string(v)
		}
		if !more {
			return ""
		}
	}
}

// flow writes text with HTML-like white-space handling: runs of white space
// collapse to one space, block boundaries become one newline.
type flow struct {
	write   func(string) error
	started bool // something was written
	space   bool // a space is pending
	nl      bool // a newline is pending
	tabbed  bool // a tab is pending
}

func (f *flow) sep() error {
	if !f.started {
		f.space, f.nl, f.tabbed = false, false, false
		return nil
	}
	var s string
	switch {
	case f.nl:
		s = "\n"
	case f.tabbed:
		s = "\t"
	case f.space:
		s = " "
	}
	f.space, f.nl, f.tabbed = false, false, false
	if s == "" {
		return nil
	}
	return f.write(s)
}

// text writes a text run; pre keeps its white space as is.
func (f *flow) text(s string, pre bool) error {
	if pre {
		if s == "" {
			return nil
		}
		if err := f.sep(); err != nil {
			return err
		}
		f.started = true
		return f.write(s)
	}
	for s != "" {
		i := strings.IndexAny(s, " \t\r\n\f\u00a0")
		if i < 0 {
			i = len(s)
		}
		if i > 0 {
			if err := f.sep(); err != nil {
				return err
			}
			f.started = true
			if err := f.write(s[:i]); err != nil {
				return err
			}
			s = s[i:]
			continue
		}
		// skip the white-space run (U+00A0 is two bytes)
		f.space = true
		if strings.HasPrefix(s, "\u00a0") {
			s = s[len("\u00a0"):]
		} else {
			s = s[1:]
		}
	}
	return nil
}

func (f *flow) block() { f.nl = true }
func (f *flow) tab()   { f.tabbed = true }
