package server_test

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/mailarc/mailarc/internal/archive"
)

// TestUserIsolationSenderAndEnvelope: a user's address only in the Sender
// field, only in the envelope, or as the second From address makes the
// message theirs on every route alike: the search total, its hits, get,
// raw, attachment and export all agree (and another's message stays
// invisible everywhere).
func TestUserIsolationSenderAndEnvelope(t *testing.T) {
	nd := start(t, t.TempDir())
	const date = "Tue, 3 Mar 2020 10:00:00 +0000"
	// Sender: alice, From: her boss (mail sent on the boss's behalf).
	bySender := nd.post(t, strings.Replace(mail("boss@corp.example", "partner@other.example", "sender only", date, "visibility probe"),
		"To: ", "Sender: Alice <alice@corp.example>\r\nTo: ", 1))
	// Alice is the second author.
	coAuthor := nd.post(t, mail("boss@corp.example, Alice <alice@corp.example>", "partner@other.example", "second author", date, "visibility probe"))
	// Alice only in the envelope (a Bcc delivered by SMTP or journaling).
	res, err := nd.n.Archive.Ingest(context.Background(), []byte(mail("boss@corp.example", "partner@other.example", "envelope only", date, "visibility probe")),
		archive.Origin{Source: "smtp", MailFrom: "boss@corp.example", RcptTo: []string{"alice@corp.example"}})
	if err != nil {
		t.Fatal(err)
	}
	byEnvelope := res.ID
	// Not hers: her address in the body and a Reply-To only.
	other := nd.post(t, strings.Replace(mail("boss@corp.example", "partner@other.example", "not hers", date, "visibility probe alice@corp.example"),
		"To: ", "Reply-To: alice@corp.example\r\nTo: ", 1))
	nd.waitIndexed(t, 4)
	if c, b := nd.admin(t, "POST", "/api/v1/users", []byte(`{"name":"alice","password":"alice-pass-1","role":"user","addresses":["alice@corp.example"]}`)); c != 201 {
		t.Fatalf("add user: %d %s", c, b)
	}
	as := func(path string) (int, []byte) {
		c, b, _ := nd.req(t, "GET", path, "alice", "alice-pass-1", nil)
		return c, b
	}
	hers := []string{bySender, coAuthor, byEnvelope}
	slices.Sort(hers)
	for _, q := range []string{"", "visibility probe", "subject:only OR subject:author"} {
		c, b := as("/api/v1/search?q=" + url.QueryEscape(q))
		var sr struct {
			Total    int `json:"total"`
			Messages []struct {
				ID string `json:"id"`
			} `json:"messages"`
		}
		if err := json.Unmarshal(b, &sr); c != 200 || err != nil {
			t.Fatalf("search %q: %d %v %s", q, c, err, b)
		}
		var got []string
		for _, m := range sr.Messages {
			got = append(got, m.ID)
		}
		slices.Sort(got)
		if sr.Total != 3 || !slices.Equal(got, hers) {
			t.Errorf("search %q: total %d, hits %v; want 3 hits %v", q, sr.Total, got, hers)
		}
	}
	for _, id := range hers {
		for _, p := range []string{"", "/raw", "/attachments/0"} {
			if c, b := as("/api/v1/messages/" + id + p); c != 200 {
				t.Errorf("message %s%s: %d %s", id, p, c, b)
			}
		}
	}
	for _, p := range []string{"", "/raw", "/attachments/0"} {
		if c, b := as("/api/v1/messages/" + other + p); c != 404 || errCode(b) != "not_found" {
			t.Errorf("other's message%s: %d %s", p, c, b)
		}
	}
	c, b := as("/api/v1/export?format=zip&q=" + url.QueryEscape("visibility probe"))
	if c != 200 {
		t.Fatalf("export: %d %s", c, b)
	}
	files := zipFiles(t, b)
	if len(files) != len(hers)+2 || files["messages/"+other+".eml"] != nil {
		t.Errorf("export has %d files (want %d messages + manifest + custody), other's present: %v", len(files), len(hers), files["messages/"+other+".eml"] != nil)
	}
	for _, id := range hers {
		if files["messages/"+id+".eml"] == nil {
			t.Errorf("export lacks %s", id)
		}
	}
	// A domain is not an address: it would show everyone's mail to the
	// index and nothing to get.
	if c, b := nd.admin(t, "POST", "/api/v1/users", []byte(`{"name":"dom","password":"dom-pass-12","role":"user","addresses":["@corp.example"]}`)); c != 400 {
		t.Errorf("user with a domain address: %d %s", c, b)
	}
}
