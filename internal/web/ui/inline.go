package ui

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/mailarc/mailarc/internal/message"
)

// Limits on the images of a message that are inlined as data: URIs (the
// decoded bytes; the base64 text in the frame document is a third larger).
// An image over maxInlineImage, or one that would take the message over
// maxInlineTotal, is left out and its alt text (or a placeholder) shown.
const (
	maxInlineImage = 2 << 20
	maxInlineTotal = 8 << 20
)

// inlineTypes are the image formats inlined: the raster formats the
// sanitiser accepts in data: URIs. SVG never (it is a document, not a
// picture); the type is taken from the bytes, not from the part's header.
var inlineTypes = map[string]bool{"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true}

// cidURL reports whether an attribute value is a cid: URL (RFC 2392) and
// returns the Content-ID it names: URL-decoded, without angle brackets.
func cidURL(v string) (string, bool) {
	v = strings.TrimSpace(v)
	if len(v) < 4 || !strings.EqualFold(v[:4], "cid:") {
		return "", false
	}
	id := v[4:]
	if u, err := url.PathUnescape(id); err == nil {
		id = u
	}
	id = strings.TrimSpace(id)
	id = strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
	return id, id != ""
}

// hasCID reports whether s may contain a cid: reference (a cheap test that
// spares most messages the tokenizer).
func hasCID(s string) bool {
	return strings.Contains(s, "cid:") || strings.Contains(strings.ToLower(s), "cid:")
}

// cidRefs returns the Content-IDs the HTML parts refer to from <img src>.
func cidRefs(parts []string) map[string]bool {
	refs := map[string]bool{}
	for _, p := range parts {
		if !hasCID(p) {
			continue
		}
		z := html.NewTokenizer(strings.NewReader(p))
		for {
			tt := z.Next()
			if tt == html.ErrorToken {
				break
			}
			if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
				continue
			}
			tok := z.Token()
			if tok.DataAtom != atom.Img {
				continue
			}
			for _, a := range tok.Attr {
				if a.Key == "src" {
					if id, ok := cidURL(a.Val); ok {
						refs[id] = true
					}
				}
			}
		}
	}
	return refs
}

// referenced reports whether an attachment is one of refs (exactly, or
// failing that ignoring case).
func referenced(refs map[string]bool, a message.Attachment) bool {
	if a.ContentID == "" {
		return false
	}
	if refs[a.ContentID] {
		return true
	}
	for id := range refs {
		if strings.EqualFold(id, a.ContentID) {
			return true
		}
	}
	return false
}

// inliner turns cid: image references into data: URIs for one message.
type inliner struct {
	parts  []message.Attachment // with Data
	budget int                  // bytes of image data left for the message
	uris   map[int]string       // attachment index -> data: URI, once built
}

func newInliner(atts []message.Attachment) *inliner {
	return &inliner{parts: atts, budget: maxInlineTotal, uris: map[int]string{}}
}

// find returns the attachment with Content-ID id: an exact match first,
// then one that differs only in case.
func (in *inliner) find(id string) (message.Attachment, bool) {
	for _, a := range in.parts {
		if a.ContentID == id {
			return a, true
		}
	}
	for _, a := range in.parts {
		if a.ContentID != "" && strings.EqualFold(a.ContentID, id) {
			return a, true
		}
	}
	return message.Attachment{}, false
}

// dataURI returns the data: URI for the image with Content-ID id, or why
// there is none.
func (in *inliner) dataURI(id string) (uri, why string) {
	a, ok := in.find(id)
	if !ok {
		return "", "inline image not found"
	}
	declared := a.ContentType
	if declared == "image/svg+xml" || (!strings.HasPrefix(declared, "image/") && declared != "application/octet-stream") {
		return "", "inline " + declared + " not shown"
	}
	if len(a.Data) > maxInlineImage {
		return "", "inline image too large to show (" + humanSize(int64(len(a.Data))) + ")"
	}
	if len(a.Data) > in.budget {
		return "", "inline image not shown (the message's images exceed " + humanSize(maxInlineTotal) + ")"
	}
	typ := http.DetectContentType(a.Data)
	if !inlineTypes[typ] {
		return "", "inline " + declared + " not shown"
	}
	in.budget -= len(a.Data)
	if u, ok := in.uris[a.Index]; ok {
		return u, ""
	}
	u := "data:" + typ + ";base64," + base64.StdEncoding.EncodeToString(a.Data)
	in.uris[a.Index] = u
	return u, ""
}

// rewrite replaces the src of every <img src="cid:..."> in an HTML body
// part: with a data: URI when the image can be inlined, else it removes the
// src and keeps (or supplies) the alt text. Everything else is copied byte
// for byte; the result still goes through the sanitiser.
func (in *inliner) rewrite(s string) string {
	if !hasCID(s) {
		return s
	}
	z := html.NewTokenizer(strings.NewReader(s))
	var b strings.Builder
	b.Grow(len(s))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			break
		}
		raw := z.Raw()
		if (tt != html.StartTagToken && tt != html.SelfClosingTagToken) || !bytes.Contains(bytes.ToLower(raw), []byte("cid:")) {
			b.Write(raw)
			continue
		}
		raw = bytes.Clone(raw)
		tok := z.Token()
		if tok.DataAtom != atom.Img {
			b.Write(raw)
			continue
		}
		changed, why := false, ""
		attrs := tok.Attr[:0:0]
		for _, a := range tok.Attr {
			if a.Key == "src" {
				if id, ok := cidURL(a.Val); ok {
					changed = true
					uri, reason := in.dataURI(id)
					if uri == "" {
						why = reason
						continue
					}
					a.Val = uri
				}
			}
			attrs = append(attrs, a)
		}
		if !changed {
			b.Write(raw)
			continue
		}
		if why != "" {
			alt := -1
			for i, a := range attrs {
				if a.Key == "alt" {
					alt = i
				}
			}
			switch {
			case alt < 0:
				attrs = append(attrs, html.Attribute{Key: "alt", Val: "[" + why + "]"})
			case strings.TrimSpace(attrs[alt].Val) == "":
				attrs[alt].Val = "[" + why + "]"
			}
		}
		tok.Attr = attrs
		b.WriteString(tok.String())
	}
	return b.String()
}

// inlineHTML returns the message's HTML body parts with their cid: images
// inlined. p is the message parsed without attachment data; the message is
// parsed again, keeping the data, only when a part refers to a cid: image
// that the message has.
func inlineHTML(raw []byte, p *message.Parsed, opt message.Options) []string {
	refs := cidRefs(p.HTML)
	if len(refs) == 0 {
		return p.HTML
	}
	found := false
	for _, a := range p.Attachments {
		found = found || referenced(refs, a)
	}
	parts := p.HTML
	in := newInliner(nil)
	if found {
		opt.KeepAttachmentData = true
		full := message.Parse(raw, opt)
		parts, in = full.HTML, newInliner(full.Attachments)
	}
	out := make([]string, len(parts))
	for i, s := range parts {
		out[i] = in.rewrite(s)
	}
	return out
}

// remoteImages reports whether a sanitised document loads anything from
// another site (images, table backgrounds): only then is "Show remote
// images" offered.
func remoteImages(doc string) bool {
	z := html.NewTokenizer(strings.NewReader(doc))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return false
		}
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		_, more := z.TagName()
		for more {
			var k, v []byte
			k, v, more = z.TagAttr()
			switch string(k) {
			case "src", "background", "poster":
				if remoteURL(string(v)) {
					return true
				}
			case "srcset":
				for _, c := range strings.Split(string(v), ",") {
					if remoteURL(c) {
						return true
					}
				}
			}
		}
	}
}

func remoteURL(v string) bool {
	v = strings.ToLower(strings.TrimSpace(v))
	return strings.HasPrefix(v, "http:") || strings.HasPrefix(v, "https:") || strings.HasPrefix(v, "//")
}
