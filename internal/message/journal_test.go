package message

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

// journalOriginal is the message the test reports wrap.
var journalOriginal = "From: Alice <Alice@Contoso.example>\r\nTo: bob@contoso.example\r\nSubject: Quarterly results\r\n" +
	"Message-ID: <orig-1@contoso.example>\r\nDate: Tue, 2 Mar 2021 10:00:00 +0000\r\n\r\nNumbers attached.\r\n"

// journalReport builds an Exchange-style envelope journal report
// ([MS-OXJRNL] section 2.1): report header, envelope body, original message
// attached as message/rfc822 with the given transfer encoding.
func journalReport(marker, cte, envelope, original string) []byte {
	attached := original
	if cte == "base64" {
		attached = base64.StdEncoding.EncodeToString([]byte(original))
	}
	return msg(
		"From: Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@contoso.example>",
		"To: journal@archive.example",
		"Subject: Quarterly results",
		marker,
		"Message-ID: <report-1@contoso.example>",
		"MIME-Version: 1.0",
		"Content-Type: multipart/mixed; boundary=\"_jr_\"",
		"",
		"--_jr_",
		"Content-Type: text/plain; charset=\"us-ascii\"",
		"Content-Transfer-Encoding: 7bit",
		"",
		envelope,
		"--_jr_",
		"Content-Type: message/rfc822",
		"Content-Transfer-Encoding: "+cte,
		"",
		attached,
		"--_jr_--",
		"")
}

const journalEnvelopeText = "Sender: Alice@Contoso.example\r\n" +
	"Subject: Quarterly results\r\n" +
	"Message-Id: <orig-1@contoso.example>\r\n" +
	"On-Behalf-Of: boss@contoso.example\r\n" +
	"To: bob@contoso.example\r\n" +
	"Cc: Carol@Fabrikam.example\r\n" +
	"Bcc: dave@contoso.example\r\n" +
	"To: sales@contoso.example, Expanded: erin@contoso.example\r\n" +
	"Recipient: frank@contoso.example, Forwarded: frank.home@fabrikam.example\r\n" +
	"Recipient: BOB@contoso.example\r\n"

func TestUnwrapJournal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ marker, cte string }{
		{"X-MS-Journal-Report:", "7bit"},
		{"X-MS-Journal-Report: ", "base64"},
		{"Content-Identifier: ExJournalReport", "7bit"},
		{"content-identifier: exjournalreport", "quoted-printable"},
	} {
		raw := journalReport(tc.marker, tc.cte, journalEnvelopeText, journalOriginal)
		orig, env, ok := UnwrapJournal(raw)
		if !ok {
			t.Errorf("%s/%s: not recognised", tc.marker, tc.cte)
			continue
		}
		// The attached message comes back byte for byte (the report's CRLF
		// line break before the delimiter is not part of it).
		if string(orig) != journalOriginal {
			t.Errorf("%s/%s: original %q", tc.marker, tc.cte, orig)
		}
		if env.Sender != "alice@contoso.example" || env.Subject != "Quarterly results" || env.MessageID != "orig-1@contoso.example" ||
			env.OnBehalfOf != "boss@contoso.example" {
			t.Errorf("%s: envelope %+v", tc.marker, env)
		}
		want := map[string]string{
			"To":         "bob@contoso.example sales@contoso.example erin@contoso.example",
			"Cc":         "carol@fabrikam.example",
			"Bcc":        "dave@contoso.example",
			"Recipients": "bob@contoso.example carol@fabrikam.example dave@contoso.example sales@contoso.example erin@contoso.example frank@contoso.example frank.home@fabrikam.example",
		}
		got := map[string]string{
			"To": strings.Join(env.To, " "), "Cc": strings.Join(env.Cc, " "), "Bcc": strings.Join(env.Bcc, " "),
			"Recipients": strings.Join(env.Recipients, " "),
		}
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s: %s = %q, want %q", tc.marker, k, got[k], w)
			}
		}
		p := Parse(orig, Options{})
		if p.MessageID != "orig-1@contoso.example" || p.Text != "Numbers attached.\n" {
			t.Errorf("original parses to %q %q", p.MessageID, p.Text)
		}
		// The copy does not alias the report.
		if len(orig) > 0 {
			orig[0] = 'X'
			if bytes.Contains(raw, []byte("Xrom: Alice")) {
				t.Error("original shares memory with the report")
			}
		}
	}
}

func TestUnwrapJournalNegative(t *testing.T) {
	t.Parallel()
	// An ordinary message with an attached message is not a report.
	plain := bytes.Replace(journalReport("X-Other: 1", "7bit", journalEnvelopeText, journalOriginal), []byte("X-Other: 1"), []byte("X-Other: 2"), 1)
	if _, _, ok := UnwrapJournal(plain); ok {
		t.Error("ordinary message recognised as a journal report")
	}
	// The marker in the body does not count.
	if _, _, ok := UnwrapJournal([]byte("Subject: x\r\n\r\nX-MS-Journal-Report: yes\r\n")); ok {
		t.Error("marker in the body recognised")
	}
	// A report without an attached original is left alone.
	noOrig := msg("X-MS-Journal-Report:", "Content-Type: text/plain", "", "Sender: a@x.example")
	if _, _, ok := UnwrapJournal(noOrig); ok {
		t.Error("report without original unwrapped")
	}
	// A report with an original but no envelope body still unwraps.
	bare := msg("X-MS-Journal-Report:", "Content-Type: message/rfc822", "", "Subject: only", "", "x")
	orig, env, ok := UnwrapJournal(bare)
	if !ok || string(orig) != "Subject: only\r\n\r\nx" || len(env.Recipients) != 0 {
		t.Errorf("bare report: ok=%v orig=%q env=%+v", ok, orig, env)
	}
	if !IsJournalReport(bare) || IsJournalReport(plain) {
		t.Error("IsJournalReport disagrees with UnwrapJournal")
	}
}

func TestMayBeJournal(t *testing.T) {
	for _, c := range []struct {
		raw  string
		want bool
	}{
		{"X-MS-Journal-Report:\r\n\r\nbody", true},
		{"Subject: a\r\nx-ms-journal-REPORT: \r\n\r\n", true},
		{"Content-Identifier: ExJournalReport\n\n", true},
		{"X-Mſ-Journal-Report:\r\n\r\n", true}, // long s folds to s
		{"Subject: a\r\nContent-Identifier \t: ExJournalReport\r\n\r\n", true},
		{"Subject: a\r\nFrom: b\r\n\r\nX-MS-Journal-Report: in the body\r\n", false},
		{"Subject: Journal report\r\n\r\n", false},
		{"Subject: a\r\n\r\n", false},
		{"", false},
	} {
		if got := mayBeJournal([]byte(c.raw)); got != c.want {
			t.Errorf("mayBeJournal(%q) = %v, want %v", c.raw, got, c.want)
		}
	}
}
