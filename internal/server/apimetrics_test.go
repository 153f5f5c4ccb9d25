package server_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// metricValue returns the value of the unlabelled sample name in a
// Prometheus text exposition, and whether it is there.
func metricValue(exposition, name string) (float64, bool) {
	for _, line := range strings.Split(exposition, "\n") {
		v, ok := strings.CutPrefix(line, name+" ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		return f, err == nil
	}
	return 0, false
}

// TestAPIMetricsAndRaw: /metrics counts the bytes ingested, the duplicate
// POST and the store's size; /raw answers message/rfc822 with the id's hash.
func TestAPIMetricsAndRaw(t *testing.T) {
	nd := start(t, t.TempDir())
	c, b := nd.admin(t, "POST", "/api/v1/messages", []byte(withAttachment))
	var posted struct{ ID string }
	if err := json.Unmarshal(b, &posted); c != 201 || err != nil {
		t.Fatalf("post: %d %s", c, b)
	}
	if c, b = nd.admin(t, "POST", "/api/v1/messages", []byte(withAttachment)); c != 200 {
		t.Fatalf("duplicate post: %d %s", c, b)
	}

	c, b, _ = nd.req(t, "GET", "/metrics", "", "", nil)
	if c != 200 {
		t.Fatalf("metrics: %d", c)
	}
	exp := string(b)
	for _, m := range []struct {
		name string
		ok   func(float64) bool
		want string
	}{
		{"mailarc_archive_messages_ingested_total", func(v float64) bool { return v == 1 }, "1"},
		{"mailarc_archive_bytes_ingested_total", func(v float64) bool { return v == float64(len(withAttachment)) }, strconv.Itoa(len(withAttachment))},
		{"mailarc_archive_duplicates_total", func(v float64) bool { return v == 1 }, "1"},
		{"mailarc_store_stored_bytes", func(v float64) bool { return v > 0 }, "> 0"},
	} {
		v, found := metricValue(exp, m.name)
		if !found || !m.ok(v) {
			t.Errorf("%s = %v (present %v), want %s", m.name, v, found, m.want)
		}
	}

	c, b, h := nd.req(t, "GET", "/api/v1/messages/"+posted.ID+"/raw", "admin", "admin-pass-1", nil)
	if c != 200 || string(b) != withAttachment {
		t.Fatalf("raw: %d %q", c, b)
	}
	if ct := h.Get("Content-Type"); ct != "message/rfc822" {
		t.Errorf("raw Content-Type %q, want message/rfc822", ct)
	}
	if sum := h.Get("X-Mailarc-Sha256"); sum != posted.ID {
		t.Errorf("raw X-Mailarc-Sha256 %q, want the id %s", sum, posted.ID)
	}
}
