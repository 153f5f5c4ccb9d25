package server_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // to hold the index's write lock

	"github.com/mailarc/mailarc/internal/testutil"
)

// indexState is the part of /api/v1/status about the index.
type indexState struct {
	Counts struct{ Archived, Indexed int64 }
	Index  struct {
		LagMessages int64   `json:"lag_messages"`
		LagSeconds  float64 `json:"lag_seconds"`
	}
}

func (nd *node) indexState(t *testing.T) indexState {
	t.Helper()
	c, b := nd.admin(t, "GET", "/api/v1/status", nil)
	var st indexState
	if err := json.Unmarshal(b, &st); c != 200 || err != nil {
		t.Fatalf("status: %d %s", c, b)
	}
	return st
}

// metric returns the value of an unlabelled metric from /metrics.
func (nd *node) metric(t *testing.T, name string) float64 {
	t.Helper()
	c, b, _ := nd.req(t, "GET", "/metrics", "", "", nil)
	if c != 200 {
		t.Fatalf("metrics: %d", c)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %q", name, line)
			}
			return f
		}
	}
	t.Fatalf("metric %s missing", name)
	return 0
}

// searchIDs runs a search and returns the total and the ids in order.
func (nd *node) searchIDs(t *testing.T, params string) (int, []string) {
	t.Helper()
	c, b := nd.admin(t, "GET", "/api/v1/search?"+params, nil)
	var r struct {
		Total    int
		Messages []struct{ ID string }
	}
	if err := json.Unmarshal(b, &r); c != 200 || err != nil {
		t.Fatalf("search %s: %d %s", params, c, b)
	}
	ids := make([]string, len(r.Messages))
	for i, m := range r.Messages {
		ids[i] = m.ID
	}
	return r.Total, ids
}

// TestSearchSortAndPaging: the search API's sort, limit and offset over
// three dated messages, and the 400 answers for bad values.
func TestSearchSortAndPaging(t *testing.T) {
	nd := start(t, t.TempDir())
	msg := func(date, subject, body string) string {
		return "From: a@corp.example\r\nTo: b@corp.example\r\nDate: " + date + "\r\nSubject: " + subject + "\r\n\r\n" + body + "\r\n"
	}
	// Relevance: B has the word most often and in the subject, C twice in
	// a short body, A once in a long one.
	a := nd.post(t, msg("Fri, 1 Jan 2021 10:00:00 +0000", "alpha note", "kiwi "+strings.Repeat("filler ", 60)))
	b := nd.post(t, msg("Sat, 1 Jan 2022 10:00:00 +0000", "kiwi kiwi", "kiwi kiwi kiwi"))
	c := nd.post(t, msg("Sun, 1 Jan 2023 10:00:00 +0000", "gamma note", "kiwi kiwi filler"))
	// Other words, so that kiwi is rare. BM25 statistics are kept per
	// index shard (each holds a random half of the messages), so there are
	// enough messages for both halves to agree on how rare kiwi is (with a
	// dozen per shard, the shard holding C alone would rate kiwi rarer and
	// C above B).
	for i := 0; i < 400; i++ {
		nd.post(t, msg("Mon, 2 Jan 2023 10:00:00 +0000", fmt.Sprint("other ", i), "nothing of interest"))
	}
	testutil.Eventually(t, 30*time.Second, "403 messages indexed", func() bool { return nd.indexState(t).Counts.Indexed == 403 })

	q := "q=" + url.QueryEscape("kiwi")
	for _, tc := range []struct {
		params string
		want   []string
	}{
		{"&sort=date", []string{a, b, c}},
		{"&sort=-date", []string{c, b, a}},
		{"", []string{c, b, a}}, // newest first by default
		{"&sort=relevance", []string{b, c, a}},
		{"&sort=date&limit=2", []string{a, b}},
		{"&sort=date&limit=2&offset=2", []string{c}},
		{"&sort=date&limit=1&offset=1", []string{b}},
		{"&sort=-date&limit=2&offset=1", []string{b, a}},
		{"&sort=date&offset=3", []string{}},
		{"&sort=relevance&offset=9950", []string{}}, // offset+limit = 10,000: the deepest relevance page
		{"&sort=-date&offset=20000", []string{}},    // date order pages deeper
	} {
		total, ids := nd.searchIDs(t, q+tc.params)
		if total != 3 || !slices.Equal(ids, tc.want) {
			t.Errorf("%s: total %d, ids %v, want 3 %v", tc.params, total, ids, tc.want)
		}
	}
	for _, tc := range []struct{ params, code string }{
		{"&sort=size", "bad_sort"}, {"&sort=DATE", "bad_sort"},
		{"&limit=0", "bad_limit"}, {"&limit=1001", "bad_limit"}, {"&limit=ten", "bad_limit"},
		{"&offset=-1", "bad_offset"}, {"&offset=x", "bad_offset"},
		{"&sort=relevance&offset=9951", "bad_offset"}, {"&sort=relevance&offset=9000&limit=1001", "bad_limit"},
	} {
		if c, b := nd.admin(t, "GET", "/api/v1/search?"+q+tc.params, nil); c != 400 || errCode(b) != tc.code {
			t.Errorf("%s: %d %s, want 400 %s", tc.params, c, b, tc.code)
		}
	}
}

// TestIngestWhileIndexStalled: with the index's write lock held by another
// connection (as a long merge or a stuck disk would), indexing stops but
// ingest goes on answering at once; status and metrics show the lag in
// messages and a lag in seconds that grows; once the lock is released the
// indexer catches up by itself.
func TestIngestWhileIndexStalled(t *testing.T) {
	dir := t.TempDir()
	nd := start(t, dir)
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "index.db")+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	held := true
	release := func() {
		if held {
			held = false
			if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(func() { // before the node stops (cleanups run last first)
		release()
		if err := conn.Close(); err != nil {
			t.Error(err)
		}
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})

	for i := 0; i < 3; i++ {
		begin := time.Now()
		nd.post(t, fmt.Sprintf("From: a@corp.example\r\nSubject: stalled %d\r\n\r\nwombat body\r\n", i))
		// The index's busy timeout is 10 s: an ingest that waited for the
		// index could not answer this fast.
		if d := time.Since(begin); d > 5*time.Second {
			t.Errorf("ingest took %v while the index is stalled", d)
		}
	}
	var first indexState
	testutil.Eventually(t, 30*time.Second, "the lag to show in the status", func() bool {
		first = nd.indexState(t)
		return first.Index.LagMessages == 3 && first.Index.LagSeconds > 0
	})
	if first.Counts.Archived != 3 || first.Counts.Indexed != 0 {
		t.Fatalf("status while stalled: %+v", first)
	}
	testutil.Eventually(t, 30*time.Second, "lag_seconds to grow", func() bool {
		return nd.indexState(t).Index.LagSeconds > first.Index.LagSeconds
	})
	for name, want := range map[string]float64{"mailarc_archive_messages": 3, "mailarc_index_indexed_messages": 0, "mailarc_index_lag_messages": 3} {
		if v := nd.metric(t, name); v != want {
			t.Errorf("%s = %v while stalled, want %v", name, v, want)
		}
	}
	if v := nd.metric(t, "mailarc_index_lag_seconds"); v <= first.Index.LagSeconds {
		t.Errorf("mailarc_index_lag_seconds = %v while stalled, want more than %v", v, first.Index.LagSeconds)
	}
	// Searches answer from what is indexed so far.
	if total, _ := nd.searchIDs(t, "q=wombat"); total != 0 {
		t.Errorf("search while stalled: total %d", total)
	}

	release()
	testutil.Eventually(t, 60*time.Second, "the indexer to catch up", func() bool {
		st := nd.indexState(t)
		return st.Counts.Indexed == 3 && st.Index.LagMessages == 0 && st.Index.LagSeconds == 0
	})
	if total, _ := nd.searchIDs(t, "q=wombat"); total != 3 {
		t.Errorf("search after catching up: total %d, want 3", total)
	}
	for name, want := range map[string]float64{"mailarc_index_indexed_messages": 3, "mailarc_index_lag_messages": 0, "mailarc_index_lag_seconds": 0} {
		if v := nd.metric(t, name); v != want {
			t.Errorf("%s = %v after catching up, want %v", name, v, want)
		}
	}
}
