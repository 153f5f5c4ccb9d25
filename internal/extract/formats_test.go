package extract

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/mailarc/mailarc/internal/testutil/mailtest"
)

func TestRTF(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in string
		want     []string
		absent   []string
	}{
		{"plain", `{\rtf1\ansi Hello {\b bold} world\par next}`, []string{"Hello bold world\nnext"}, nil},
		{"hex cp1252", `{\rtf1\ansi\ansicpg1252 caf\'e9 \'93q\'94}`, []string{"café “q”"}, nil},
		{"hex cp1251", `{\rtf1\ansi\ansicpg1251 \'cf\'f0\'e8\'e2\'e5\'f2}`, []string{"Привет"}, nil},
		{"font charset", `{\rtf1\ansi\ansicpg1252{\fonttbl{\f0 Arial;}{\f1\fcharset204 Arial Cyr;}}\f1 \'cc\'e8\'f0\f0  caf\'e9}`, []string{"Мир café"}, []string{"Arial"}},
		{"dbcs 932", `{\rtf1\ansi\ansicpg932 \'82\'b1\'82\'f1}`, []string{"こん"}, nil},
		{"unicode uc1", `{\rtf1\ansi\uc1 \u1055?\u1088?\u1080?}`, []string{"При"}, []string{"?"}},
		{"unicode uc2 negative", `{\rtf1\ansi\uc2 \u-3913\'81\'82 x}`, []string{"\uf0b7 x"}, nil},
		{"surrogates", `{\rtf1\ansi\uc0 \u-10179\u-8704}`, []string{"😀"}, nil},
		{"skipped destinations", `{\rtf1{\fonttbl{\f0 SecretFont;}}{\colortbl;\red0\green0\blue0;}{\stylesheet{\s1 SecretStyle;}}{\info{\title SecretTitle}}{\*\generator SecretGen;}{\pict\pngblip 89504e47SecretPict}Visible}`,
			[]string{"Visible"}, []string{"Secret"}},
		{"bin", "{\\rtf1 a{\\pict\\bin6 }}}}}}b}c}", []string{"ac"}, []string{"}}"}},
		{"fields", `{\rtf1 {\field{\*\fldinst HYPERLINK "http://x"}{\fldrslt link text}}}`, []string{"link text"}, []string{"HYPERLINK"}},
		{"escapes", `{\rtf1 a\{b\}c\\d\~e\tab f}`, []string{"a{b}c\\d\u00a0e\tf"}, nil},
		{"mid-group star", `{\rtf1 {\f2\*\cs7 The quick fox}}`, []string{"The quick fox"}, nil},
		{"tables", `{\rtf1 \trowd a\cell b\cell\row c}`, []string{"a\tb\t\nc"}, nil},
	}
	for _, c := range cases {
		got := rtfToText([]byte(c.in))
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q not in %q", c.name, w, got)
			}
		}
		for _, a := range c.absent {
			if strings.Contains(got, a) {
				t.Errorf("%s: %q in %q", c.name, a, got)
			}
		}
	}
	// Deep nesting is bounded, unbalanced braces are harmless.
	deep := "{\\rtf1 " + strings.Repeat("{", 100000) + "deep" + strings.Repeat("}", 100000) + " end}"
	if got := rtfToText([]byte(deep)); !strings.Contains(got, "end") {
		t.Errorf("deep: %.100q", got)
	}
	if got := rtfToText([]byte(`{\rtf1 }}}}} after`)); !strings.Contains(got, "after") {
		t.Errorf("unbalanced: %q", got)
	}
}

func TestPlainTextCharsets(t *testing.T) {
	t.Parallel()
	utf16le := []byte{0xFF, 0xFE, 'h', 0, 'i', 0, 0xE9, 0}
	utf16be := []byte{0xFE, 0xFF, 0, 'h', 0, 'i', 0, 0xE9}
	cases := []struct {
		name, ct string
		in       []byte
		want     string
	}{
		{"utf8", "text/plain", []byte("grüße"), "grüße"},
		{"utf8 bom", "text/plain", []byte("\xEF\xBB\xBFbom"), "bom"},
		{"cp1252 fallback", "text/plain", []byte("caf\xe9 \x80"), "café €"},
		{"declared latin2", "text/plain; charset=iso-8859-2", []byte("\xb1"), "ą"},
		{"utf16le", "", utf16le, "hié"},
		{"utf16be", "text/plain", utf16be, "hié"},
		{"csv", "text/csv", []byte("a;b\n1;Zürich\n"), "a;b\n1;Zürich\n"},
	}
	for _, c := range cases {
		got, err := text(t, "f.txt", c.ct, c.in)
		if err != nil || got != c.want {
			t.Errorf("%s: got %q, %v; want %q", c.name, got, err, c.want)
		}
	}
}

func TestICS(t *testing.T) {
	t.Parallel()
	ics := "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:secret-uid@example\r\nDTSTART:20240101T100000Z\r\n" +
		"SUMMARY:Quarterly re\r\n view\\, budget\r\nDESCRIPTION:Line one\\nLine two\\; done\r\n" +
		"LOCATION:Room 42\r\nORGANIZER;CN=\"Doe, Jane\":mailto:jane@example.com\r\n" +
		"ATTENDEE;ROLE=REQ-PARTICIPANT;CN=Bob:mailto:bob@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
	got, err := text(t, "invite.ics", "text/calendar; method=REQUEST", []byte(ics))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"Quarterly review, budget", "Line one\nLine two; done", "Room 42", "Doe, Jane jane@example.com", "Bob bob@example.com"} {
		if !strings.Contains(got, w) {
			t.Errorf("%q not in %q", w, got)
		}
	}
	for _, a := range []string{"secret-uid", "20240101", "mailto:"} {
		if strings.Contains(got, a) {
			t.Errorf("%q in %q", a, got)
		}
	}
	// Sniffed without type or extension.
	if got, _ := text(t, "", "", []byte(ics)); !strings.Contains(got, "Room 42") || strings.Contains(got, "DTSTART") {
		t.Errorf("sniffed: %q", got)
	}
}

func TestOfficeSynthetic(t *testing.T) {
	t.Parallel()
	xlsx := makeZip(t,
		"xl/workbook.xml", `<workbook><sheets><sheet name="Budget2024" sheetId="1"/></sheets></workbook>`,
		"xl/sharedStrings.xml", `<sst><si><t>SharedWord</t></si><si><r><t>Rich</t></r><r><t>Text</t></r><rPh><t>PHONETIC</t></rPh></si></sst>`,
		"xl/worksheets/sheet1.xml", `<worksheet><sheetData><row><c t="s"><v>0</v></c><c><v>12345</v></c><c t="inlineStr"><is><t>InlineWord</t></is></c><c><f>SUM(A1)</f><v>99</v></c></row></sheetData></worksheet>`,
	)
	pptx := makeZip(t,
		"ppt/presentation.xml", `<p:presentation/>`,
		"ppt/slides/slide10.xml", `<p:sld xmlns:a="a" xmlns:p="p"><a:p><a:r><a:t>TenthSlide</a:t></a:r></a:p></p:sld>`,
		"ppt/slides/slide2.xml", `<p:sld xmlns:a="a" xmlns:p="p"><a:p><a:r><a:t>SecondSlide</a:t></a:r></a:p></p:sld>`,
		"ppt/notesSlides/notesSlide1.xml", `<p:notes xmlns:a="a"><a:t>SpeakerNote</a:t></p:notes>`,
	)
	odt := makeZip(t,
		"mimetype", "application/vnd.oasis.opendocument.text",
		"content.xml", `<office:document-content xmlns:office="o" xmlns:text="t"><office:automatic-styles><style:style name="HiddenStyle"/></office:automatic-styles><office:body><office:text><text:h>Heading</text:h><text:p>one<text:s/>two<text:tab/>three<text:line-break/>four</text:p></office:text></office:body></office:document-content>`,
		"meta.xml", `<office:document-meta xmlns:dc="dc"><office:meta><dc:title>MetaTitle</dc:title></office:meta></office:document-meta>`,
	)
	cases := []struct {
		name   string
		data   []byte
		want   []string
		absent []string
	}{
		{"x.docx", makeDOCX(t, "Hello world", "Second paragraph"), []string{"Hello world\nSecond paragraph"}, nil},
		{"x.xlsx", xlsx, []string{"Budget2024", "SharedWord", "RichText", "12345", "InlineWord", "99"}, []string{"PHONETIC", "SUM("}},
		{"x.pptx", pptx, []string{"SecondSlide\nTenthSlide", "SpeakerNote"}, nil},
		{"x.odt", odt, []string{"Heading\none two\tthree\nfour", "MetaTitle"}, []string{"HiddenStyle"}},
	}
	for _, c := range cases {
		got, err := text(t, "attachment", "application/octet-stream", c.data)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q not in %q", c.name, w, got)
			}
		}
		for _, a := range c.absent {
			if strings.Contains(got, a) {
				t.Errorf("%s: %q in %q", c.name, a, got)
			}
		}
	}
}

func TestZipMembers(t *testing.T) {
	t.Parallel()
	data := makeZip(t,
		"notes/readme.txt", "plain member text",
		"mail/message.eml", "Subject: hi\r\n\r\nbody of the eml",
		"page.html", "<p>html <script>hidden()</script>member</p>",
		"photo.jpg", "\xff\xd8\xff\xe0 not really a jpeg",
		"doc.docx", string(makeDOCX(t, "docx inside zip")),
	)
	got, err := text(t, "bundle.zip", "application/x-zip-compressed", data)
	if err != nil {
		t.Errorf("err = %v (unsupported members must not be errors)", err)
	}
	for _, w := range []string{"notes/readme.txt", "plain member text", "body of the eml", "html member", "photo.jpg", "docx inside zip"} {
		if !strings.Contains(got, w) {
			t.Errorf("%q not in %q", w, got)
		}
	}
	if strings.Contains(got, "hidden()") {
		t.Errorf("script text in %q", got)
	}
}

func TestUnsupported(t *testing.T) {
	t.Parallel()
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	for _, c := range []struct{ name, ct string }{
		{"a.png", "image/png"},
		{"a.bin", ""},
		{"a.mp3", "audio/mpeg"},
		{"winmail.dat", "application/ms-tnef"}, // a PNG named winmail.dat, as found in the corpus
	} {
		if _, err := text(t, c.name, c.ct, png); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s %s: err = %v, want ErrUnsupported", c.name, c.ct, err)
		}
	}
	if _, err := text(t, "store.pst", "", []byte("!BDN\x00\x01binary")); !errors.Is(err, ErrUnsupported) {
		t.Errorf("pst: %v", err)
	}
	// A PDF declared as an image is still a PDF.
	if got, err := text(t, "scan.jpg", "image/jpeg", makePDF(t, "really a pdf", false)); err != nil || !strings.Contains(got, "really a pdf") {
		t.Errorf("pdf as jpeg: %q, %v", got, err)
	}
}

func TestLegacyPrintable(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	b.Write(magicOLE)
	b.Write([]byte{0, 1, 2, 0xff, 0xff, 0xff, 0xff, 0xff})
	b.WriteString("Eight bit words here")
	b.Write([]byte{0, 0, 3})
	for _, r := range "Unicode wörds" {
		_ = binary.Write(&b, binary.LittleEndian, uint16(r))
	}
	b.Write([]byte{0, 0, 0, 7})
	got, err := text(t, "old.doc", "application/msword", b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"Eight bit words here", "Unicode wörds"} {
		if !strings.Contains(got, w) {
			t.Errorf("%q not in %q", w, got)
		}
	}
	if strings.Contains(got, "ÿÿ") {
		t.Errorf("binary noise in %q", got)
	}
}

// TestCompressedRTF decodes the example of [MS-OXRTFCP] 4.1.
func TestCompressedRTF(t *testing.T) {
	t.Parallel()
	if len(rtfPrebuf) != 207 {
		t.Fatalf("prebuf is %d bytes, want 207", len(rtfPrebuf))
	}
	in := []byte{
		0x2d, 0x00, 0x00, 0x00, 0x2b, 0x00, 0x00, 0x00, 0x4c, 0x5a, 0x46, 0x75, 0xf1, 0xc5, 0xc7, 0xa7,
		0x03, 0x00, 0x0a, 0x00, 0x72, 0x63, 0x70, 0x67, 0x31, 0x32, 0x35, 0x42, 0x32, 0x0a, 0xf3, 0x20,
		0x68, 0x65, 0x6c, 0x09, 0x00, 0x20, 0x62, 0x77, 0x05, 0xb0, 0x6c, 0x64, 0x7d, 0x0a, 0x80, 0x0f,
		0xa0,
	}
	j := &job{lim: DefaultLimits()}
	got, err := j.decompressRTF(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := "{\\rtf1\\ansi\\ansicpg1252\\pard hello world}\r\n"; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestTNEFSynthetic(t *testing.T) {
	t.Parallel()
	full := mailtest.TNEF("TNEF subject", "TNEF body text", "notes.txt", "attached file words")
	got, err := text(t, "winmail.dat", "application/ms-tnef", full)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"TNEF subject", "TNEF body text", "notes.txt", "attached file words"} {
		if !strings.Contains(got, w) {
			t.Errorf("%q not in %q", w, got)
		}
	}
	// Truncated at every byte: no panic, text or a reason.
	for i := range full {
		_, _ = text(t, "winmail.dat", "application/ms-tnef", full[:i])
	}
}
