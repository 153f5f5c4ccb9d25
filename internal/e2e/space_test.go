package e2e

import (
	"encoding/json"
	"net/smtp"
	"strings"
	"testing"
)

// TestLowSpaceRefusesTemporarily: a node whose data directory has less free
// space than min_free_space answers every ingest path with a temporary
// refusal (SMTP 452 4.3.1, API 503 low_space), stores nothing, and shows the
// reserve in /api/v1/status.
func TestLowSpaceRefusesTemporarily(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a mailarc process")
	}
	dir := t.TempDir()
	p := newProc(t, dir, `min_free_space = "1000TB"`)
	p.start()

	raw := []byte("From: a@example.com\r\nTo: b@example.com\r\nSubject: space\r\n\r\nlowspacetoken\r\n")
	code, body, err := p.do("POST", "/api/v1/messages", raw)
	if err != nil {
		t.Fatal(err)
	}
	if code != 503 || !strings.Contains(string(body), `"low_space"`) {
		t.Fatalf("API ingest on a full disk: %d %s, want 503 low_space", code, body)
	}

	err = sendPlain(p.smtpAddr, raw)
	if err == nil || !strings.Contains(err.Error(), "452") || !strings.Contains(err.Error(), "4.3.1") {
		t.Fatalf("SMTP on a full disk: %v, want 452 4.3.1", err)
	}

	code, body, err = p.do("GET", "/api/v1/status", nil)
	if err != nil || code != 200 {
		t.Fatalf("status: %d %v", code, err)
	}
	var st struct {
		Counts struct {
			Archived int64 `json:"archived"`
		} `json:"counts"`
		Storage struct {
			Space *struct {
				FreeBytes    int64 `json:"free_bytes"`
				MinFreeBytes int64 `json:"min_free_bytes"`
				Low          bool  `json:"low"`
			} `json:"space"`
		} `json:"storage"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	if st.Counts.Archived != 0 {
		t.Fatalf("archived %d messages on a full disk", st.Counts.Archived)
	}
	if sp := st.Storage.Space; sp == nil || !sp.Low || sp.MinFreeBytes < 1<<40 || sp.FreeBytes <= 0 {
		t.Fatalf("status storage.space = %+v, want low with the reserve", sp)
	}
}

// sendPlain sends one message without STARTTLS (net/smtp.SendMail would
// upgrade and refuse the node's self-signed certificate).
func sendPlain(addr string, raw []byte) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Mail("a@example.com"); err != nil {
		return err
	}
	if err := c.Rcpt("b@example.com"); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(raw); err != nil {
		return err
	}
	return w.Close()
}
