package message

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// msg joins lines with CRLF.
func msg(lines ...string) []byte {
	return []byte(strings.Join(lines, "\r\n"))
}

// problems returns p.Problems without the "no Date header" note most test
// messages would otherwise carry.
func problems(p *Parsed) []string {
	var out []string
	for _, pr := range p.Problems {
		if pr != "no Date header" {
			out = append(out, pr)
		}
	}
	return out
}

// encode encodes s with enc (test helper).
func encode(t *testing.T, enc encoding.Encoding, s string) []byte {
	t.Helper()
	b, err := enc.NewEncoder().Bytes([]byte(s))
	if err != nil {
		t.Fatalf("encode %q: %v", s, err)
	}
	return b
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"", ""},
		{"a\nb", "a\r\nb"},
		{"\n", "\r\n"},
		{"a\r\nb\r\n", "a\r\nb\r\n"},
		{"a\rb\n", "a\rb\r\n"},
		{"\r\r\n\n", "\r\r\n\r\n"},
		{"x\x00\xff\n\x00", "x\x00\xff\r\n\x00"},
		{"no newline", "no newline"},
	}
	for _, c := range cases {
		got := Normalize([]byte(c.in))
		if string(got) != c.want {
			t.Errorf("Normalize(%q) = %q, want %q", c.in, got, c.want)
		}
		if again := Normalize(got); string(again) != string(got) {
			t.Errorf("Normalize not idempotent on %q: %q", c.in, again)
		}
	}
	crlf := []byte("Subject: x\r\n\r\nbody\r\n")
	if got := Normalize(crlf); &got[0] != &crlf[0] {
		t.Error("Normalize copied input that needed no change")
	}
}

func TestID(t *testing.T) {
	t.Parallel()
	id := ID([]byte("abc"))
	if id != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("ID(abc) = %s", id)
	}
	if !ValidID(id) {
		t.Errorf("ValidID(%s) = false", id)
	}
	for _, bad := range []string{"", strings.ToUpper(id), id[:63], id + "0", strings.Replace(id, "b", "g", 1)} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}

func TestEncodedWords(t *testing.T) {
	t.Parallel()
	ksc := base64.StdEncoding.EncodeToString(encode(t, korean.EUCKR, "안녕하세요"))
	gb := base64.StdEncoding.EncodeToString(encode(t, simplifiedchinese.GBK, "你好世界"))
	jis := base64.StdEncoding.EncodeToString(encode(t, japanese.ISO2022JP, "こんにちは"))
	cases := []struct{ subject, want string }{
		{"=?utf-8?B?SGVsbG8gV8O2cmxk?=", "Hello Wörld"},
		{"=?ISO-8859-1?Q?Caf=E9_au_lait?=", "Café au lait"},
		{"=?utf-8?q?a?= =?utf-8?q?b?=", "ab"},
		{"Re: =?utf-8?q?caf=C3=A9?= ok", "Re: café ok"},
		{"=?ks_c_5601-1987?B?" + ksc + "?=", "안녕하세요"},
		{"=?gb2312?B?" + gb + "?=", "你好世界"},
		{"=?iso-2022-jp?B?" + jis + "?=", "こんにちは"},
		{"=?x-bogus?Q?plain?=", "plain"},
		{"=?utf-8?B?broken", "=?utf-8?B?broken"},
	}
	for _, c := range cases {
		p := Parse(msg("Subject: "+c.subject, "", "body"), Options{})
		if p.Subject != c.want {
			t.Errorf("Subject %q decoded to %q, want %q", c.subject, p.Subject, c.want)
		}
		if p.Get("subject") != c.want {
			t.Errorf("Header value %q, want %q", p.Get("subject"), c.want)
		}
	}
	p := Parse(msg(`From: =?utf-8?Q?J=C3=B6rg?= <jorg@example.com>`, "", ""), Options{})
	if len(p.From) != 1 || p.From[0].Name != "Jörg" || p.From[0].Addr != "jorg@example.com" {
		t.Errorf("From = %+v", p.From)
	}
}

func TestFilenames(t *testing.T) {
	t.Parallel()
	cases := []struct{ header, want string }{
		{`Content-Disposition: attachment; filename="plain.pdf"`, "plain.pdf"},
		{`Content-Disposition: attachment; filename*=UTF-8''na%C3%AFve%20file.txt`, "naïve file.txt"},
		{`Content-Disposition: attachment; filename*=iso-8859-1'fr'r%E9sum%E9.doc`, "résumé.doc"},
		{"Content-Disposition: attachment;\r\n filename*0*=UTF-8''%E6%97%A5%E6%9C%AC;\r\n filename*1*=%E8%AA%9E;\r\n filename*2=\".txt\"", "日本語.txt"},
		{"Content-Disposition: attachment; filename*1=\"second\"; filename*0=\"first-\"", "first-second"},
		{`Content-Disposition: attachment; filename="=?UTF-8?B?w6nDqMOgLnBkZg==?="`, "éèà.pdf"},
		{`Content-Disposition: attachment; filename=unquoted name.pdf`, "unquoted name.pdf"},
		{`Content-Disposition: attachment; filename="unterminated.pdf`, "unterminated.pdf"},
		{`Content-Type: application/pdf name="missing-semicolon.pdf"`, "missing-semicolon.pdf"},
		{`Content-Type: application/octet-stream; name*=ks_c_5601-1987''%BE%C8%B3%E7.hwp`, "안녕.hwp"},
	}
	for _, c := range cases {
		raw := msg("Subject: f", "Content-Type: multipart/mixed; boundary=XX", "", "--XX", "", "text", "--XX", c.header, "", "data", "--XX--", "")
		p := Parse(raw, Options{})
		if len(p.Attachments) != 1 {
			t.Errorf("%s: %d attachments, problems %q", c.header, len(p.Attachments), p.Problems)
			continue
		}
		if got := p.Attachments[0].Filename; got != c.want {
			t.Errorf("%s: filename %q, want %q", c.header, got, c.want)
		}
		if p.Text != "text" {
			t.Errorf("%s: text %q", c.header, p.Text)
		}
	}
}

func TestBodyCharsets(t *testing.T) {
	t.Parallel()
	cases := []struct {
		charset string
		body    []byte
		want    string
	}{
		{"ks_c_5601-1987", encode(t, korean.EUCKR, "한국어 본문"), "한국어 본문"},
		{"gb2312", encode(t, simplifiedchinese.GBK, "简体中文"), "简体中文"},
		{"GB2312", encode(t, simplifiedchinese.GB18030, "简体中文"), "简体中文"},
		{"iso-2022-jp", encode(t, japanese.ISO2022JP, "日本語の本文"), "日本語の本文"},
		{"x-sjis", encode(t, japanese.ShiftJIS, "シフトJIS"), "シフトJIS"},
		{"shift-jis", encode(t, japanese.ShiftJIS, "シフトJIS"), "シフトJIS"},
		{"koi8-r", encode(t, charmap.KOI8R, "Привет"), "Привет"},
		{"windows-1251", encode(t, charmap.Windows1251, "Привет"), "Привет"},
		{"windows-1252", []byte("caf\xe9 \x80"), "café €"},
		{"iso-8859-2", encode(t, charmap.ISO8859_2, "Łódź"), "Łódź"},
		{"unicode-1-1-utf-7", []byte("Hi Mom -+Jjo--!"), "Hi Mom -☺-!"},
		{"utf-7", []byte("A+ImIDkQ."), "A≢Α."},
		{"x-unknown-bogus", []byte("caf\xc3\xa9"), "café"},
		{"x-unknown-bogus", []byte("caf\xe9"), "café"},
		{"", []byte("caf\xe9"), "café"},
		{"us-ascii", []byte("caf\xc3\xa9"), "café"},
	}
	for _, c := range cases {
		raw := append(msg("Subject: cs", "Content-Type: text/plain; charset=\""+c.charset+"\"", "", ""), c.body...)
		p := Parse(raw, Options{})
		if p.Text != c.want {
			t.Errorf("charset %q: text %q, want %q", c.charset, p.Text, c.want)
		}
		bogus := strings.Contains(c.charset, "bogus")
		if got := len(problems(p)) > 0; got != bogus {
			t.Errorf("charset %q: problems %q", c.charset, problems(p))
		}
	}
}

func TestEightBitHeader(t *testing.T) {
	t.Parallel()
	p := Parse([]byte("Subject: caf\xe9 cr\xe8me\r\nFrom: J\xf6rg <j@x.example>\r\n\r\nbody"), Options{})
	if p.Subject != "café crème" {
		t.Errorf("latin-1 subject = %q", p.Subject)
	}
	if len(p.From) != 1 || p.From[0].Name != "Jörg" {
		t.Errorf("From = %+v", p.From)
	}
	p = Parse([]byte("Subject: caf\xc3\xa9\r\n\r\n"), Options{})
	if p.Subject != "café" {
		t.Errorf("utf-8 subject = %q", p.Subject)
	}
}

func TestNoHeaders(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"just a body\r\nline two\r\n", "  indented first line\r\n", "\r\nafter blank line"} {
		p := Parse([]byte(raw), Options{Arrival: time.Date(2020, 1, 2, 3, 4, 5, 0, time.FixedZone("", 3600))})
		if len(p.Header) != 0 {
			t.Errorf("%q: header %+v", raw, p.Header)
		}
		want := strings.ReplaceAll(strings.TrimPrefix(raw, "\r\n"), "\r\n", "\n")
		if p.Text != want {
			t.Errorf("%q: text %q, want %q", raw, p.Text, want)
		}
		if p.DateSource != DateFromArrival || !p.Date.Equal(time.Date(2020, 1, 2, 2, 4, 5, 0, time.UTC)) || p.Date.Location() != time.UTC {
			t.Errorf("%q: date %v from %s", raw, p.Date, p.DateSource)
		}
	}
	p := Parse(nil, Options{})
	if p == nil || p.Text != "" || p.DateSource != DateFromArrival || !p.Date.IsZero() {
		t.Errorf("empty message: %+v", p)
	}
}

func TestNULInHeaders(t *testing.T) {
	t.Parallel()
	raw := []byte("Subject: a\x00b\r\nFrom: x\x00y@example.com\r\nX-Bad\x00Key: v\r\nTo: z@example.com\r\n\r\nbody\x00text")
	p := Parse(raw, Options{})
	if p.Subject != "ab" {
		t.Errorf("subject %q", p.Subject)
	}
	for _, f := range p.Header {
		if strings.IndexByte(f.Value, 0) >= 0 || strings.IndexByte(f.Key, 0) >= 0 {
			t.Errorf("NUL kept in %q: %q", f.Key, f.Value)
		}
	}
	if len(p.To) != 1 || p.To[0].Addr != "z@example.com" {
		t.Errorf("header after the NUL key lost: To = %+v (problems %q)", p.To, p.Problems)
	}
	if p.Text != "bodytext" {
		t.Errorf("text %q", p.Text)
	}
	if len(p.Problems) == 0 {
		t.Error("no problem noted for NUL bytes")
	}
}

func TestBrokenBase64(t *testing.T) {
	t.Parallel()
	good := base64.StdEncoding.EncodeToString([]byte("Hello, broken world! 0123456789"))
	body := good[:8] + "\r\n!!##" + good[8:20] + "\r\n  \t" + good[20:] + "\r\n===garbage"
	raw := msg("Subject: b", "Content-Type: text/plain", "Content-Transfer-Encoding: base64", "", body)
	p := Parse(raw, Options{})
	if !strings.HasPrefix(p.Text, "Hello, broken world! 0123456789") {
		t.Errorf("text %q", p.Text)
	}
	if len(p.Problems) == 0 {
		t.Error("no problem noted")
	}
	// Concatenated padded blobs and a truncated tail.
	raw = msg("Content-Type: application/octet-stream", "Content-Transfer-Encoding: base64", "",
		base64.StdEncoding.EncodeToString([]byte("ab"))+base64.StdEncoding.EncodeToString([]byte("cde"))+"Zm9vYm")
	p = Parse(raw, Options{KeepAttachmentData: true})
	if len(p.Attachments) != 1 || string(p.Attachments[0].Data) != "abcdefoob" || p.Attachments[0].Size != 9 {
		t.Errorf("attachments %+v", p.Attachments)
	}
	// Count-only sizing agrees with decoding.
	q := Parse(raw, Options{})
	if q.Attachments[0].Size != 9 || q.Attachments[0].Data != nil {
		t.Errorf("size-only attachment %+v", q.Attachments[0])
	}
}

func TestQuotedPrintable(t *testing.T) {
	t.Parallel()
	raw := msg("Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: quoted-printable", "",
		"caf=C3=A9 soft=", "break =3d=3D bad=ZZ trailing= ", "end=")
	p := Parse(raw, Options{})
	if want := "café softbreak == bad=ZZ trailingend"; p.Text != want {
		t.Errorf("text %q, want %q", p.Text, want)
	}
}

func TestMultipartStructure(t *testing.T) {
	t.Parallel()
	raw := msg(
		"From: a@example.com",
		"Content-Type: multipart/mixed; boundary=\"outer\"",
		"",
		"preamble",
		"--outer",
		"Content-Type: multipart/alternative; boundary=inner",
		"",
		"--inner",
		"Content-Type: text/plain; charset=utf-8",
		"",
		"plain body",
		"--inner",
		"Content-Type: text/html; charset=utf-8",
		"",
		"<p>html body</p>",
		"--inner--",
		"--outer",
		"Content-Type: image/png",
		"Content-Disposition: inline",
		"Content-Transfer-Encoding: base64",
		"",
		"iVBORw0KGgo=",
		"--outer",
		"Content-Type: text/plain; name=notes.txt",
		"",
		"attached text",
		"--outer",
		"Content-Type: text/plain",
		"Content-Disposition: attachment",
		"",
		"disposition attachment",
		"--outer",
		"Content-Type: text/calendar",
		"",
		"BEGIN:VCALENDAR",
		"--outer",
		"",
		"second plain (no header)",
		"--outer--",
		"epilogue",
	)
	p := Parse(raw, Options{KeepAttachmentData: true})
	if p.Text != "plain body\nsecond plain (no header)" {
		t.Errorf("text %q", p.Text)
	}
	if len(p.HTML) != 1 || p.HTML[0] != "<p>html body</p>" {
		t.Errorf("html %q", p.HTML)
	}
	want := []struct {
		ct, name, disp string
		size           int64
	}{
		{"image/png", "", "inline", 8},
		{"text/plain", "notes.txt", "", 13},
		{"text/plain", "", "attachment", 22},
		{"text/calendar", "", "", 15},
	}
	if len(p.Attachments) != len(want) {
		t.Fatalf("attachments %+v", p.Attachments)
	}
	for i, w := range want {
		a := p.Attachments[i]
		if a.Index != i || a.ContentType != w.ct || a.Filename != w.name || a.Disposition != w.disp || a.Size != w.size || int64(len(a.Data)) != w.size {
			t.Errorf("attachment %d = %+v, want %+v", i, a, w)
		}
		att, data, err := AttachmentData(raw, i)
		if err != nil || !bytes.Equal(data, a.Data) || att.Index != i || att.ContentType != w.ct {
			t.Errorf("AttachmentData(%d) = %+v %q %v", i, att, data, err)
		}
	}
	if len(problems(p)) != 0 {
		t.Errorf("problems %q", problems(p))
	}
	if _, _, err := AttachmentData(raw, 4); !errors.Is(err, ErrNoAttachment) {
		t.Errorf("AttachmentData(4) error %v", err)
	}
	if _, _, err := AttachmentData(raw, -1); !errors.Is(err, ErrNoAttachment) {
		t.Errorf("AttachmentData(-1) error %v", err)
	}
}

func TestBrokenMultipart(t *testing.T) {
	t.Parallel()
	t.Run("no boundary parameter", func(t *testing.T) {
		p := Parse(msg("Content-Type: multipart/mixed", "", "--sniffed", "", "hello", "--sniffed", "Content-Type: application/pdf", "", "%PDF", "--sniffed--"), Options{})
		if p.Text != "hello" || len(p.Attachments) != 1 || len(p.Problems) == 0 {
			t.Errorf("text %q, attachments %d, problems %q", p.Text, len(p.Attachments), p.Problems)
		}
	})
	t.Run("unterminated", func(t *testing.T) {
		p := Parse(msg("Content-Type: multipart/mixed; boundary=b", "", "--b", "", "first", "--b", "Content-Type: application/zip", "", "PK..."), Options{})
		if p.Text != "first" || len(p.Attachments) != 1 || p.Attachments[0].Size != 5 {
			t.Errorf("text %q, attachments %+v", p.Text, p.Attachments)
		}
		if !strings.Contains(strings.Join(p.Problems, ";"), "not terminated") {
			t.Errorf("problems %q", p.Problems)
		}
	})
	t.Run("boundary never occurs", func(t *testing.T) {
		p := Parse(msg("Content-Type: multipart/mixed; boundary=nope", "", "just text"), Options{})
		if p.Text != "just text" || len(p.Problems) == 0 {
			t.Errorf("text %q problems %q", p.Text, p.Problems)
		}
	})
	t.Run("LF line endings", func(t *testing.T) {
		p := Parse([]byte("Content-Type: multipart/mixed; boundary=b\n\n--b\n\nlf text\n--b--\n"), Options{})
		if p.Text != "lf text" {
			t.Errorf("text %q", p.Text)
		}
	})
	t.Run("boundary prefix of another", func(t *testing.T) {
		p := Parse(msg("Content-Type: multipart/mixed; boundary=b", "", "--b", "Content-Type: multipart/alternative; boundary=b2", "", "--b2", "", "inner", "--b2--", "--b--"), Options{})
		if p.Text != "inner" {
			t.Errorf("text %q problems %q", p.Text, p.Problems)
		}
	})
}

func TestHugeHeaderLine(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 200*1024)
	raw := msg("X-Long: "+long, "Subject: after", "References: "+strings.Repeat("<a@b> ", 30000), "", "body")
	start := time.Now()
	p := Parse(raw, Options{})
	if d := time.Since(start); d > 2*time.Second*timeScale {
		t.Errorf("took %v", d)
	}
	if p.Subject != "after" || p.Get("X-Long") != long || p.Text != "body" || len(p.References) != maxMsgIDs {
		t.Errorf("subject %q, text %q, %d references", p.Subject, p.Text, len(p.References))
	}
}

func TestLargeAttachment(t *testing.T) {
	t.Parallel()
	size := 50 << 20
	if raceEnabled {
		size = 5 << 20 // the race detector makes 50 MB take minutes
	}
	data := make([]byte, size)
	rand.New(rand.NewSource(1)).Read(data)
	enc := base64.StdEncoding.EncodeToString(data)
	var b bytes.Buffer
	b.WriteString("Subject: big\r\nContent-Type: multipart/mixed; boundary=\"=_big\"\r\n\r\n--=_big\r\n\r\nsee attachment\r\n--=_big\r\n")
	b.WriteString("Content-Type: application/octet-stream; name=big.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	for i := 0; i < len(enc); i += 76 {
		b.WriteString(enc[i:min(i+76, len(enc))])
		b.WriteString("\r\n")
	}
	b.WriteString("--=_big--\r\n")
	raw := b.Bytes()

	start := time.Now()
	p := Parse(raw, Options{})
	parse := time.Since(start)
	d := parse
	if len(p.Attachments) != 1 || p.Attachments[0].Size != int64(size) || p.Text != "see attachment" {
		t.Fatalf("attachments %+v, text %q", p.Attachments, p.Text)
	}
	if d > 3*time.Second*timeScale {
		t.Errorf("Parse of a 50 MB attachment took %v", d)
	}
	start = time.Now()
	_, got, err := AttachmentData(raw, 0)
	d = time.Since(start)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("AttachmentData: %v, %d bytes, equal=%v", err, len(got), bytes.Equal(got, data))
	}
	if d > 5*time.Second*timeScale {
		t.Errorf("AttachmentData of a 50 MB attachment took %v", d)
	}
	t.Logf("50 MB attachment: parse %v, extract %v", parse, d)

	// The same attachment slightly broken (a stray character) takes the
	// lenient path and is still decoded, in bounded time.
	at := bytes.Index(raw, []byte("base64\r\n\r\n")) + 10
	broken := append(bytes.Clone(raw[:at]), bytes.Replace(raw[at:], []byte("\r\n"), []byte("\r\n*"), 1000)...)
	start = time.Now()
	p = Parse(broken, Options{})
	if d := time.Since(start); d > 5*time.Second*timeScale {
		t.Errorf("Parse of a broken 50 MB attachment took %v", d)
	}
	if len(p.Attachments) != 1 || p.Attachments[0].Size != int64(size) {
		t.Errorf("broken: attachments %+v", p.Attachments)
	}
}

func TestNestedMessage(t *testing.T) {
	t.Parallel()
	inner := msg("From: Inner <inner@example.com>", "Subject: inner subject", "Date: Tue, 1 Jun 2021 10:00:00 +0200",
		"Content-Type: multipart/mixed; boundary=in", "", "--in", "", "inner text", "--in",
		"Content-Type: application/pdf; name=in.pdf", "", "%PDF-1.4", "--in--", "")
	raw := msg("From: outer@example.com", "Subject: Fwd", "Content-Type: multipart/mixed; boundary=out", "",
		"--out", "", "outer text", "--out", "Content-Type: message/rfc822", "Content-Transfer-Encoding: base64", "",
		base64.StdEncoding.EncodeToString(inner), "--out", "Content-Type: text/rfc822-headers", "", "Subject: x", "--out--")
	p := Parse(raw, Options{})
	if p.Text != "outer text" || len(p.Attachments) != 2 {
		t.Fatalf("text %q attachments %+v", p.Text, p.Attachments)
	}
	a := p.Attachments[0]
	if a.ContentType != "message/rfc822" || a.Size != int64(len(inner)) || a.Nested == nil {
		t.Fatalf("attachment %+v", a)
	}
	n := a.Nested
	if n.Subject != "inner subject" || n.Text != "inner text" || len(n.Attachments) != 1 || n.Attachments[0].Filename != "in.pdf" ||
		len(n.From) != 1 || n.From[0].Addr != "inner@example.com" || !n.Date.Equal(time.Date(2021, 6, 1, 8, 0, 0, 0, time.UTC)) {
		t.Errorf("nested %+v", n)
	}
	if p.Attachments[1].Nested != nil || p.Attachments[1].ContentType != "text/rfc822-headers" {
		t.Errorf("text/rfc822-headers attachment %+v", p.Attachments[1])
	}
	_, data, err := AttachmentData(raw, 0)
	if err != nil || !bytes.Equal(data, inner) {
		t.Errorf("AttachmentData nested: %v %q", err, data)
	}
}

func TestDeepNesting(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	const levels = 5000
	for i := 0; i < levels; i++ {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i)
	}
	b.WriteString("\r\ndeep text\r\n")
	for i := levels - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	start := time.Now()
	p := Parse(b.Bytes(), Options{})
	if d := time.Since(start); d > 2*time.Second*timeScale {
		t.Errorf("took %v", d)
	}
	if len(p.Attachments) != 1 || !strings.Contains(strings.Join(p.Problems, ";"), "deeper than 20") {
		t.Errorf("attachments %+v problems %q", p.Attachments, p.Problems)
	}

	// Nested message/rfc822 chains are capped too.
	m := []byte("Subject: leaf\r\n\r\nleaf")
	for i := 0; i < 100; i++ {
		m = append([]byte("Content-Type: message/rfc822\r\n\r\n"), m...)
	}
	p = Parse(m, Options{MaxDepth: 5})
	depth := 0
	for q := p; len(q.Attachments) > 0 && q.Attachments[0].Nested != nil; q = q.Attachments[0].Nested {
		depth++
	}
	if depth != 5 {
		t.Errorf("nested depth %d, want 5", depth)
	}
}

func TestManyParts(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	b.WriteString("Content-Type: multipart/mixed; boundary=p\r\n\r\n")
	for i := 0; i < 200000; i++ {
		b.WriteString("--p\r\nContent-Type: application/x-n\r\n\r\nx\r\n")
	}
	b.WriteString("--p--\r\n")
	start := time.Now()
	p := Parse(b.Bytes(), Options{})
	if d := time.Since(start); d > 2*time.Second*timeScale {
		t.Errorf("took %v", d)
	}
	if len(p.Attachments) != DefaultMaxParts-1 {
		t.Errorf("%d attachments, want %d", len(p.Attachments), DefaultMaxParts-1)
	}
	if !strings.Contains(strings.Join(p.Problems, ";"), "more than 1000 MIME parts") {
		t.Errorf("problems %q", p.Problems)
	}
}

func TestMaxTextBytes(t *testing.T) {
	t.Parallel()
	raw := msg("Content-Type: multipart/alternative; boundary=b", "", "--b", "", strings.Repeat("é", 100), "--b",
		"Content-Type: text/html", "", strings.Repeat("h", 100), "--b--")
	p := Parse(raw, Options{MaxTextBytes: 151})
	// 151 bytes would split an "é": 150 bytes of text, 1 of HTML.
	if len(p.Text) != 150 || len(p.HTML) != 1 || p.HTML[0] != "h" || len(problems(p)) != 1 {
		t.Errorf("text %d bytes, html %q, problems %q", len(p.Text), p.HTML, problems(p))
	}
}

func TestDates(t *testing.T) {
	t.Parallel()
	utc := func(y int, mo time.Month, d, h, mi, s int) time.Time {
		return time.Date(y, mo, d, h, mi, s, 0, time.UTC)
	}
	cases := []struct {
		in   string
		want time.Time
	}{
		{"Mon, 02 Jan 2006 15:04:05 -0700", utc(2006, 1, 2, 22, 4, 5)},
		{"2 Jan 2006 15:04:05 +0000", utc(2006, 1, 2, 15, 4, 5)},
		{"Mon, 2 Jan 2006 15:04 -0700", utc(2006, 1, 2, 22, 4, 0)},
		{"Mon, 2 Jan 06 15:04:05 +0100", utc(2006, 1, 2, 14, 4, 5)},
		{"Mon, 2 Jan 99 15:04:05 GMT", utc(1999, 1, 2, 15, 4, 5)},
		{"Mon, 2 Jan 2006 15:04:05 EST", utc(2006, 1, 2, 20, 4, 5)},
		{"Mon, 2 Jan 2006 15:04:05 CEST", utc(2006, 1, 2, 13, 4, 5)},
		{"Mon, 2 Jan 2006 15:04:05 -0700 (MST)", utc(2006, 1, 2, 22, 4, 5)},
		{"Mon, 2 Jan 2006 15:04:05 -0700 extra junk here", utc(2006, 1, 2, 22, 4, 5)},
		{"Monday, January 2, 2006 3:04:05 PM", utc(2006, 1, 2, 15, 4, 5)},
		{"Mon Jan  2 15:04:05 2006", utc(2006, 1, 2, 15, 4, 5)},
		{"2006-01-02T15:04:05Z", utc(2006, 1, 2, 15, 4, 5)},
		{"2006-01-02 15:04:05", utc(2006, 1, 2, 15, 4, 5)},
		{"02-Jan-2006 15:04:05 +0200", utc(2006, 1, 2, 13, 4, 5)},
		{"Mon,2 Jan 2006 15:04:05 GMT+0100", utc(2006, 1, 2, 14, 4, 5)},
	}
	for _, c := range cases {
		got, ok := parseDate(c.in)
		if !ok || !got.Equal(c.want) || got.Location() != time.UTC {
			t.Errorf("parseDate(%q) = %v, %v; want %v", c.in, got, ok, c.want)
		}
	}
	for _, bad := range []string{"", "Malformed Date.", "yesterday", "32 Foo 2006", "Mon, 2 Jan 0001 00:00:00 +0000"} {
		if got, ok := parseDate(bad); ok {
			t.Errorf("parseDate(%q) = %v, want failure", bad, got)
		}
	}

	arrival := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	p := Parse(msg("Received: from a by b; Tue, 3 Mar 2020 10:00:00 +0000",
		"Received: from c (d; e) by f; Mon, 2 Mar 2020 09:00:00 +0000",
		"Date: garbage", "", ""), Options{Arrival: arrival})
	if p.DateSource != DateFromReceived || !p.Date.Equal(utc(2020, 3, 3, 10, 0, 0)) {
		t.Errorf("received fallback: %v from %s", p.Date, p.DateSource)
	}
	p = Parse(msg("Received: from a by b; not a date", "", ""), Options{Arrival: arrival})
	if p.DateSource != DateFromArrival || !p.Date.Equal(arrival) {
		t.Errorf("arrival fallback: %v from %s", p.Date, p.DateSource)
	}
	p = Parse(msg("Date: Wed, 4 Mar 2020 11:00:00 +0100", "Received: x; Tue, 3 Mar 2020 10:00:00 +0000", "", ""), Options{Arrival: arrival})
	if p.DateSource != DateFromHeader || !p.Date.Equal(utc(2020, 3, 4, 10, 0, 0)) {
		t.Errorf("header date: %v from %s", p.Date, p.DateSource)
	}
}

func TestAddresses(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want []Address
	}{
		{"Foo Bar <foo@x.example>", []Address{{"Foo Bar", "foo@x.example"}}},
		{"foo@x.example (Foo)", []Address{{"Foo", "foo@x.example"}}},
		{`"Doe, John" <john@x.example>, jane@x.example`, []Address{{"Doe, John", "john@x.example"}, {"", "jane@x.example"}}},
		{"Doe, John <john@x.example>", []Address{{"Doe, John", "john@x.example"}}},
		{"Foo <foo@x.example", []Address{{"Foo", "foo@x.example"}}},
		{"a@x.example; b@x.example", []Address{{"", "a@x.example"}, {"", "b@x.example"}}},
		{"undisclosed-recipients:;", nil},
		{"Team: a@x.example, b@x.example;", []Address{{"", "a@x.example"}, {"", "b@x.example"}}},
		{"=?utf-8?q?J=C3=B6rg?= <j@x.example>", []Address{{"Jörg", "j@x.example"}}},
		{"Jörg Müller <jm@x.example>", []Address{{"Jörg Müller", "jm@x.example"}}},
		{"<@route:user@x.example>, broken@@x, ok@x.example", []Address{{"", "user@x.example"}, {"", "broken@@x"}, {"", "ok@x.example"}}},
		{"Foo Bar foo@x.example", []Address{{"Foo Bar", "foo@x.example"}}},
	}
	for _, c := range cases {
		p := Parse(msg("To: "+c.in, "", ""), Options{})
		if len(p.To) != len(c.want) {
			t.Errorf("%q: got %+v, want %+v", c.in, p.To, c.want)
			continue
		}
		for i := range c.want {
			if p.To[i] != c.want[i] {
				t.Errorf("%q: address %d = %+v, want %+v", c.in, i, p.To[i], c.want[i])
			}
		}
	}
	if s := (Address{"Foo", "f@x"}).String(); s != "Foo <f@x>" {
		t.Errorf("String = %q", s)
	}
	if s := (Address{"", "f@x"}).String(); s != "f@x" {
		t.Errorf("String = %q", s)
	}
	p := Parse(msg("To: a@x.example", "To: b@x.example", "Cc: c@x.example", "Bcc: d@x.example", "Reply-To: e@x.example", "Sender: f@x.example", "", ""), Options{})
	if len(p.To) != 2 || len(p.Cc) != 1 || len(p.Bcc) != 1 || len(p.ReplyTo) != 1 || len(p.Sender) != 1 {
		t.Errorf("To %v Cc %v Bcc %v ReplyTo %v Sender %v", p.To, p.Cc, p.Bcc, p.ReplyTo, p.Sender)
	}
}

func TestMessageIDs(t *testing.T) {
	t.Parallel()
	p := Parse(msg("Message-ID: <abc@x.example>", "In-Reply-To: <p1@x> (comment)", "References: <r1@x>\r\n <r2@x> <r3@x>", "", ""), Options{})
	if p.MessageID != "abc@x.example" || len(p.InReplyTo) != 1 || p.InReplyTo[0] != "p1@x" || strings.Join(p.References, ",") != "r1@x,r2@x,r3@x" {
		t.Errorf("ids %q %q %q", p.MessageID, p.InReplyTo, p.References)
	}
	p = Parse(msg("Message-Id: bare-id@x.example", "", ""), Options{})
	if p.MessageID != "bare-id@x.example" {
		t.Errorf("bare id %q", p.MessageID)
	}
}

func TestHeaderOddities(t *testing.T) {
	t.Parallel()
	// Folding, a broken fold (no leading space), and a header ending without a blank line.
	raw := []byte("From 0123 Mon Jan 1 00:00:00 2001\r\nSubject: folded\r\n  subject\r\nX-A: one\r\nbroken continuation\r\nTo: t@x.example\r\nThis is the body\r\nmore body\r\n")
	p := Parse(raw, Options{})
	if p.Subject != "folded  subject" {
		t.Errorf("subject %q", p.Subject)
	}
	if p.Get("x-a") != "onebroken continuation" {
		t.Errorf("X-A %q", p.Get("x-a"))
	}
	if len(p.To) != 1 || p.Text != "This is the body\nmore body\n" {
		t.Errorf("To %v text %q problems %q", p.To, p.Text, p.Problems)
	}
	if len(p.Problems) < 2 {
		t.Errorf("problems %q", p.Problems)
	}
}

// TestLowerKeyAndInternKey: the allocation-free forms give what the plain
// conversions give, for the names they know and for others.
func TestLowerKeyAndInternKey(t *testing.T) {
	for _, k := range []string{"From", "To", "Cc", "CC", "Bcc", "BCC", "Subject", "Date", "Message-ID", "Message-Id",
		"In-Reply-To", "References", "Received", "Reply-To", "Sender", "Return-Path", "MIME-Version", "Mime-Version",
		"Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "X-Mailer", "from", "FROM", "X-Other", "ÄÖ", ""} {
		if got := lowerKey(k); got != strings.ToLower(k) {
			t.Errorf("lowerKey(%q) = %q", k, got)
		}
		if got := internKey([]byte(k)); got != k {
			t.Errorf("internKey(%q) = %q", k, got)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = lowerKey("Message-ID"); _ = internKey([]byte("Received")) }); n != 0 {
		t.Errorf("%v allocations for known names, want 0", n)
	}
}
