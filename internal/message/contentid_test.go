package message

import "testing"

func TestContentID(t *testing.T) {
	raw := msg(
		"From: a@example.com",
		"Subject: related",
		"MIME-Version: 1.0",
		`Content-Type: multipart/related; boundary="r"`,
		"",
		"--r",
		"Content-Type: text/html; charset=utf-8",
		"",
		`<p><img src="cid:logo@x"></p>`,
		"--r",
		"Content-Type: image/png",
		"Content-ID: <logo@x>",
		"Content-Disposition: inline",
		"",
		"png",
		"--r",
		"Content-Type: image/gif",
		"Content-Id:   <part2.AB@example.com> (folded",
		" comment)",
		"",
		"gif",
		"--r",
		"Content-Type: image/jpeg",
		"Content-ID: bare-id",
		"",
		"jpg",
		"--r",
		"Content-Type: application/pdf",
		"",
		"pdf",
		"--r--",
		"",
	)
	p := Parse(raw, Options{})
	want := []string{"logo@x", "part2.AB@example.com", "bare-id", ""}
	if len(p.Attachments) != len(want) {
		t.Fatalf("%d attachments, want %d: %+v", len(p.Attachments), len(want), p.Attachments)
	}
	for i, a := range p.Attachments {
		if a.ContentID != want[i] {
			t.Errorf("attachment %d ContentID = %q, want %q", i, a.ContentID, want[i])
		}
	}
	if len(p.HTML) != 1 {
		t.Errorf("HTML parts = %d, want 1", len(p.HTML))
	}
	// AttachmentData reports it too.
	att, _, err := AttachmentData(raw, 1)
	if err != nil || att.ContentID != "part2.AB@example.com" {
		t.Errorf("AttachmentData(1) = %+v, %v", att, err)
	}
}
