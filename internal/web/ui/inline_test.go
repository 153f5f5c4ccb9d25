package ui

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/message"
	"github.com/mailarc/mailarc/internal/testutil"
)

// onePixelPNG is a valid 1×1 PNG.
const onePixelPNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

// relatedMail builds a multipart/related message: the HTML, then one part
// per image (type, Content-ID, base64 body).
func relatedMail(html string, parts ...[3]string) []byte {
	var b strings.Builder
	b.WriteString("From: a@example.com\r\nTo: b@example.com\r\nSubject: cid\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/related; boundary=\"r\"\r\n\r\n" +
		"--r\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html + "\r\n")
	for _, p := range parts {
		fmt.Fprintf(&b, "--r\r\nContent-Type: %s\r\nContent-ID: %s\r\nContent-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\n", p[0], p[1])
		s := p[2]
		for len(s) > 76 {
			b.WriteString(s[:76] + "\r\n")
			s = s[76:]
		}
		b.WriteString(s + "\r\n")
	}
	b.WriteString("--r--\r\n")
	return []byte(b.String())
}

func frameOf(raw []byte) string {
	opt := message.Options{}
	p := message.Parse(raw, opt)
	return frameDocument(newPolicy(), inlineHTML(raw, p, opt))
}

func TestInlineCIDImages(t *testing.T) {
	big := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{0}, maxInlineImage)...)
	svg := `<svg xmlns="http://www.w3.org/2000/svg" onload="parent.__pwned()"><script>parent.__pwned()</script></svg>`
	html := `<p>Logo: <img src="cid:logo@x" alt="Company logo" width="40"></p>` +
		`<p><IMG SRC='CID:%3Clogo@x%3E' id=again></p>` + // upper case, URL-encoded brackets
		`<p><img src="cid:LOGO@X" id=case></p>` + // the Content-ID in another case
		`<p><img src="cid:vector@x" alt="drawing"></p>` +
		`<p><img src="cid:big@x"></p>` +
		`<p><img src="cid:missing@x" alt=""></p>` +
		`<p><img src="cid:fake@x"></p>` + // says PNG, is HTML
		`<style>.cid:hover{}</style><p>text mentioning cid: stays</p>`
	raw := relatedMail(html,
		[3]string{"image/png", "<logo@x>", onePixelPNG},
		[3]string{"image/svg+xml", "<vector@x>", base64.StdEncoding.EncodeToString([]byte(svg))},
		[3]string{"image/png", "<big@x>", base64.StdEncoding.EncodeToString(big)},
		[3]string{"image/png", "<fake@x>", base64.StdEncoding.EncodeToString([]byte("<html><script>parent.__pwned()</script>"))},
	)
	doc := frameOf(raw)
	uri := `src="data:image/png;base64,` + onePixelPNG + `"`
	if n := strings.Count(doc, uri); n != 3 {
		t.Errorf("the PNG is inlined %d times, want 3 (plain, upper case with <>, other case):\n%s", n, doc)
	}
	if !strings.Contains(doc, `alt="Company logo"`) {
		t.Error("alt text lost")
	}
	low := strings.ToLower(doc)
	for _, bad := range []string{"image/svg", "<svg", "__pwned", "cid:logo", "cid:big", "cid:vector", "PGh0bWw"} {
		if strings.Contains(low, strings.ToLower(bad)) {
			t.Errorf("frame contains %q", bad)
		}
	}
	if len(doc) > 64<<10 {
		t.Errorf("the oversized image was inlined (document %d bytes)", len(doc))
	}
	for _, want := range []string{`alt="drawing"`, `alt="[inline image too large to show (2.0 MB)]"`, `alt="[inline image not found]"`, `alt="[inline image/png not shown]"`, "text mentioning cid: stays"} {
		if !strings.Contains(doc, want) {
			t.Errorf("frame lacks %s:\n%s", want, doc)
		}
	}

	// The per-message cap: five 1 MiB images fit 8 MiB, the rest do not.
	mib := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{1}, 1<<20)...)
	var parts [][3]string
	var h strings.Builder
	for i := 0; i < 10; i++ {
		fmt.Fprintf(&h, `<img src="cid:i%d@x">`, i)
		parts = append(parts, [3]string{"image/png", fmt.Sprintf("<i%d@x>", i), base64.StdEncoding.EncodeToString(mib)})
	}
	doc = frameOf(relatedMail(h.String(), parts...))
	if n, want := strings.Count(doc, "data:image/png"), maxInlineTotal/len(mib); n != want {
		t.Errorf("%d images inlined, want %d within %d bytes", n, want, maxInlineTotal)
	}
	if n := strings.Count(doc, "exceed"); n != 10-maxInlineTotal/len(mib) {
		t.Errorf("%d placeholders for images over the message cap", n)
	}

	// Without cid: references nothing is parsed again or changed.
	plain := relatedMail(`<p>no images</p>`)
	if d := frameOf(plain); !strings.Contains(d, "<p>no images</p>") {
		t.Errorf("plain HTML changed: %s", d)
	}
}

// TestInlineCorpus: a real mail (Thunderbird, multipart/related) whose
// quoted reply carries a screenshot as a cid: image.
func TestInlineCorpus(t *testing.T) {
	p := filepath.Join(testutil.Corpus(t), "real", "usrp", "001", "001363.eml")
	raw, err := os.ReadFile(p)
	testutil.Require(t, err == nil, "corpus sample missing: "+p)
	doc := frameOf(raw)
	if !strings.Contains(doc, `src="data:image/png;base64,iVBORw0KGgo`) {
		i := strings.Index(doc, "<img")
		t.Errorf("corpus image not inlined; first img: %.200s", doc[max(i, 0):])
	}
	if strings.Contains(doc, "cid:") {
		t.Error("a cid: reference is left")
	}
}

func TestMessagePageImages(t *testing.T) {
	tu := newTestUI(t, false)
	ctx := context.Background()
	ingest := func(raw []byte) string {
		t.Helper()
		res, err := tu.arch.Ingest(ctx, raw, archive.Origin{Source: "api"})
		if err != nil {
			t.Fatal(err)
		}
		return res.ID
	}
	cid := ingest(relatedMail(`<p><img src="cid:logo@x" alt="logo"></p>`, [3]string{"image/png", "<logo@x>", onePixelPNG}))
	remote := ingest([]byte("From: a@example.com\r\nTo: b@example.com\r\nSubject: remote\r\nMIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n" +
		"<table><tr><td background=\"https://tracker.example/bg.png\">x</td></tr></table>\r\n"))
	tok, _ := tu.session(t, "admin")
	page := readBody(t, tu.do("GET", "/messages/"+cid, nil, sessionCookie(tok)))
	if strings.Contains(page, "Show remote images") {
		t.Error("“Show remote images” offered for a message without remote images")
	}
	if !strings.Contains(page, ">inline</span>") {
		t.Error("the cid: image is not marked inline in the attachment list")
	}
	resp := tu.do("GET", "/messages/"+cid+"/html", nil, sessionCookie(tok))
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, "data:image/png;base64,"+onePixelPNG) {
		t.Errorf("frame: %d %s", resp.StatusCode, body)
	}
	page = readBody(t, tu.do("GET", "/messages/"+remote, nil, sessionCookie(tok)))
	if !strings.Contains(page, `href="/messages/`+remote+`?images=1"`) {
		t.Error("“Show remote images” missing for a message with a remote background")
	}
	page = readBody(t, tu.do("GET", "/messages/"+remote+"?images=1", nil, sessionCookie(tok)))
	if !strings.Contains(page, "Remote images shown") || !strings.Contains(page, "/html?images=1") {
		t.Error("the images=1 view does not say remote images are shown")
	}
}
