package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/mailarc/mailarc/internal/archive"
)

func TestStatusIngest(t *testing.T) {
	nd := start(t, t.TempDir())
	for i := 0; i < 3; i++ {
		raw := fmt.Sprintf("From: a@example.com\r\nTo: b@example.com\r\nSubject: rate %d\r\nMessage-ID: <rate-%d@example.com>\r\n\r\nbody %d\r\n", i, i, i)
		if _, err := nd.n.Archive.Ingest(context.Background(), []byte(raw), archive.Origin{Source: "api"}); err != nil {
			t.Fatal(err)
		}
	}
	// A duplicate is not new mail.
	if _, err := nd.n.Archive.Ingest(context.Background(), []byte("From: a@example.com\r\nTo: b@example.com\r\nSubject: rate 0\r\nMessage-ID: <rate-0@example.com>\r\n\r\nbody 0\r\n"), archive.Origin{Source: "api"}); err != nil {
		t.Fatal(err)
	}
	c, b := nd.admin(t, "GET", "/api/v1/status", nil)
	var st struct {
		Ingest *struct {
			PerMinute     float64 `json:"per_minute"`
			Total         int64   `json:"total"`
			WindowSeconds int     `json:"window_seconds"`
		} `json:"ingest"`
	}
	if err := json.Unmarshal(b, &st); c != 200 || err != nil || st.Ingest == nil {
		t.Fatalf("status: %d %v %s", c, err, b)
	}
	// The node is younger than a minute: the rate is the count so far.
	if st.Ingest.Total != 3 || st.Ingest.PerMinute != 3 || st.Ingest.WindowSeconds != 300 {
		t.Errorf("ingest = %+v, want total 3, per_minute 3, window 300", *st.Ingest)
	}
}
