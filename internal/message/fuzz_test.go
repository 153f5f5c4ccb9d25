package message

import (
	"bytes"
	"encoding/base64"
	"net/mail"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// addCorpusSeeds adds a sample of corpus files (every step-th, up to
// maxSize bytes) to the fuzz corpus; it adds nothing when the corpus is absent
// and MAILARC_INTEGRATION is unset.
func addCorpusSeeds(f *testing.F, step, maxSize int) {
	f.Helper()
	if os.Getenv("MAILARC_INTEGRATION") != "1" {
		if _, err := os.Stat(corpusRootGuess()); err != nil {
			return
		}
	}
	for _, sub := range []string{"real", "mime-edge"} {
		files := corpusFiles(f, corpusDir(f, sub))
		for i := 0; i < len(files); i += step {
			raw, err := os.ReadFile(files[i])
			if err != nil {
				f.Fatalf("read %s: %v", files[i], err)
			}
			if len(raw) <= maxSize {
				f.Add(raw)
			}
		}
	}
}

// corpusRootGuess is the corpus path relative to this package directory.
func corpusRootGuess() string { return "../../../shared/corpus" }

func fuzzSeeds(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("Subject: =?utf-8?q?x?=\r\n\r\nbody"))
	f.Add(journalReport("X-MS-Journal-Report:", "base64", journalEnvelopeText, journalOriginal))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--b--\n"))
	f.Add([]byte("Content-Type: text/plain; charset*0*=utf-7''%2B; name*=x''%\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=\r\n=4"))
	addCorpusSeeds(f, 97, 16<<10)
}

func FuzzParse(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		watchdog := time.AfterFunc(10*time.Second*timeScale, func() { panic("FuzzParse: one input took more than 10s") })
		defer watchdog.Stop()
		start := time.Now()
		p := Parse(raw, Options{KeepAttachmentData: true})
		if d := time.Since(start); d > 2*time.Second*timeScale {
			t.Fatalf("Parse took %v on %d bytes", d, len(raw))
		}
		checkParsed(t, "fuzz", p, 0)
		q := Parse(raw, Options{})
		if len(q.Attachments) != len(p.Attachments) || q.Text != p.Text {
			t.Fatalf("KeepAttachmentData changed the result: %d vs %d attachments", len(q.Attachments), len(p.Attachments))
		}
		for i, a := range p.Attachments {
			if int64(len(a.Data)) != a.Size || q.Attachments[i].Size != a.Size {
				t.Fatalf("attachment %d: Size %d, kept %d bytes, size-only %d", i, a.Size, len(a.Data), q.Attachments[i].Size)
			}
			if i >= 3 && i != len(p.Attachments)-1 {
				continue // AttachmentData re-parses: check a few, not all
			}
			att, data, err := AttachmentData(raw, i)
			if err != nil || !bytes.Equal(data, a.Data) || att.Filename != a.Filename || att.ContentType != a.ContentType {
				t.Fatalf("AttachmentData(%d) = %+v, %d bytes, %v; Parse: %+v", i, att, len(data), err, a)
			}
		}
	})
}

func FuzzUnwrapJournal(f *testing.F) {
	fuzzSeeds(f)
	f.Add([]byte("X-MS-Journal-Report:\r\nContent-Type: message/rfc822\r\n\r\nSubject: x\r\n\r\ny"))
	f.Add([]byte("Content-Identifier: ExJournalReport\nContent-Type: multipart/mixed; boundary=j\n\n--j\n\nTo: a@x, Expanded: b@y\nRecipient: c, Forwarded: d\n--j\nContent-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nU3ViamVjdDogeA==\n--j--"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		orig, env, ok := UnwrapJournal(raw)
		if !ok {
			if orig != nil || len(env.Recipients) != 0 {
				t.Fatalf("ok=false with data")
			}
			return
		}
		if !IsJournalReport(raw) {
			t.Fatal("unwrapped a message IsJournalReport rejects")
		}
		for _, s := range append(append([]string{env.Sender, env.Subject, env.MessageID}, env.Recipients...), env.To...) {
			if !utf8.ValidString(s) {
				t.Fatalf("invalid UTF-8 in envelope: %q", s)
			}
		}
		seen := map[string]bool{}
		for _, r := range env.Recipients {
			if seen[r] {
				t.Fatalf("duplicate recipient %q", r)
			}
			seen[r] = true
		}
		checkParsed(t, "fuzz-original", Parse(orig, Options{}), 0)
	})
}

func FuzzNormalize(f *testing.F) {
	f.Add([]byte("a\nb\r\nc\rd\n\n"))
	f.Add([]byte("\r\n"))
	f.Add([]byte("\n\r"))
	addCorpusSeeds(f, 499, 64<<10)
	f.Fuzz(func(t *testing.T, raw []byte) {
		n := Normalize(raw)
		if again := Normalize(n); !bytes.Equal(again, n) {
			t.Fatalf("not idempotent: %q -> %q -> %q", raw, n, again)
		}
		for i := 0; i < len(n); i++ {
			if n[i] == '\n' && (i == 0 || n[i-1] != '\r') {
				t.Fatalf("bare LF at %d in %q", i, n)
			}
		}
		// Only LF -> CRLF changed: removing every CR inserted before a
		// previously bare LF gives the input back.
		if !bytes.Equal(bytes.ReplaceAll(n, []byte("\r\n"), []byte("\n")), bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))) {
			t.Fatalf("content changed: %q -> %q", raw, n)
		}
		if len(n)-len(raw) != bytes.Count(raw, []byte("\n"))-bytes.Count(raw, []byte("\r\n")) {
			t.Fatalf("length %d -> %d", len(raw), len(n))
		}
	})
}

// FuzzMayBeJournal: when mayBeJournal says a message cannot be a journal
// report, splitting its header finds no field that marks one.
func FuzzMayBeJournal(f *testing.F) {
	fuzzSeeds(f)
	for _, s := range []string{
		"X-MS-Journal-Report:\r\n\r\nx",
		"x-ms-JOURNAL-report: \r\nSubject: a\r\n\r\n",
		"Subject: a\r\n\r\nX-MS-Journal-Report:\r\n",
		"From x\nContent-Identifier: ExJournalReport\n\n",
		"Content-Identifier:\r\n ExJournalReport\r\n\r\n",
		"X-Mſ-Journal-Report: k\r\n\r\n",
		"\r\nX-MS-Journal-Report:\r\n\r\n",
		"Subject: a\r\nstray\r\nX-MS-Journal-Report:\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if mayBeJournal(raw) {
			return
		}
		if fields, _, _ := splitHeader(raw, true); isJournalHeader(fields) {
			t.Fatalf("%q: a journal report header, but mayBeJournal says no", raw)
		}
	})
}

// FuzzParseRFC5322Date: the fast path agrees with net/mail.ParseDate on
// every value (same time, same zone, same error or not).
func FuzzParseRFC5322Date(f *testing.F) {
	for _, s := range []string{
		"Tue, 5 Mar 2002 10:00:00 -0800",
		"Tue, 05 Mar 2002 10:00:00 +0100",
		"tue, 5 Mar 2002 10:00:00 -0800",
		"Tue,  5 Mar 2002 10:00:00 -0800",
		"Tue, 5 Mar 2002 10:00:00 -0800 (PST)",
		"Tue, 5 Mar 02 10:00 PST",
		"5 Mar 2002 10:00:00 -0800",
		"Foo, 5 Mar 2002 10:00:00 -0800",
		"Tue, 31 Feb 2002 10:00:00 -0800",
		"Tue, 5 Mar 2002 10:00:00 -0800\r",
		"Tue, 5 Mar 2002 25:00:00 -0800",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, gerr := parseRFC5322Date(v)
		want, werr := mail.ParseDate(v)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("%q: error %v, net/mail %v", v, gerr, werr)
		}
		gn, go_ := got.Zone()
		wn, wo := want.Zone()
		if !got.Equal(want) || gn != wn || go_ != wo {
			t.Fatalf("%q: %v, net/mail %v", v, got, want)
		}
	})
}

// FuzzFastAddressList: whenever the fast path takes a value, net/mail
// parses it too, to the same names and addresses in the same order.
func FuzzFastAddressList(f *testing.F) {
	for _, s := range fastAddressCases {
		f.Add(s.in)
	}
	f.Fuzz(func(t *testing.T, v string) {
		checkFastAddressList(t, v)
	})
}

// checkFastAddressList fails t when fastAddressList takes v and disagrees
// with net/mail, and reports whether it took v.
func checkFastAddressList(t *testing.T, v string) bool {
	t.Helper()
	got, ok := fastAddressList(v)
	if !ok {
		return false
	}
	want, err := (&mail.AddressParser{WordDecoder: wordDecoder()}).ParseList(v)
	if err != nil {
		t.Fatalf("%q: fast path took it, net/mail refuses it: %v", v, err)
	}
	if len(got) != len(want) {
		t.Fatalf("%q: %d addresses, net/mail %d", v, len(got), len(want))
	}
	for i := range got {
		if got[i].Name != want[i].Name || got[i].Addr != want[i].Address {
			t.Fatalf("%q: address %d is %q <%s>, net/mail %q <%s>", v, i, got[i].Name, got[i].Addr, want[i].Name, want[i].Address)
		}
	}
	return true
}

// FuzzBase64Size: where base64Size sizes without decoding, the standard
// decoder takes the input whole, and decoding it (out=true) and the sizing
// decoder it replaces give the same size, none of them flagging it bad.
func FuzzBase64Size(f *testing.F) {
	for _, s := range []string{"", "QQ==", "QUI=", "QUJD", "QUJD\r\nRA==\r\n", "QQ=\r\n=", "QQ=", "QUJD=", "QQ==QQ==",
		"QU JD", "Q\nU\nJ\nD", "QUJD\r\n\r\n", "====", "QUJD-_", strings.Repeat("QUJD", 30000) + "\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		size, ok := base64Size(src)
		if !ok {
			return
		}
		std, err := base64.StdEncoding.DecodeString(string(src))
		if err != nil || int64(len(std)) != size {
			t.Fatalf("%q: size %d, the standard decoder %d bytes, %v", src, size, len(std), err)
		}
		data, n, bad := decodeBase64(src, true)
		if bad || n != size || !bytes.Equal(data, std) {
			t.Fatalf("%q: size %d, decoding gives %d bytes (bad %v)", src, size, n, bad)
		}
		_, n, ok = decodeBase64Strict(src, false)
		if !ok {
			_, n, bad = decodeBase64Lenient(src, false)
		}
		if bad || n != size {
			t.Fatalf("%q: size %d, the sizing decoder %d (bad %v)", src, size, n, bad)
		}
	})
}
