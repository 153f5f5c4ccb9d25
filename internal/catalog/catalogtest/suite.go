package catalogtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/catalog"
)

// Run runs the contract suite: each subtest opens its own catalog with
// open (a fresh, empty one, closed by the caller's cleanup).
func Run(t *testing.T, open func(t testing.TB) *catalog.Catalog) {
	tests := []struct {
		name string
		fn   func(t *testing.T, c *catalog.Catalog)
	}{
		{"CommitDedupUnion", testCommitDedupUnion},
		{"FeedOrderAndHead", testFeedOrderAndHead},
		{"ChangedAfter", testChangedAfter},
		{"Lookups", testLookups},
		{"JournalReports", testJournalReports},
		{"PurgeAndTombstones", testPurgeAndTombstones},
		{"Candidates", testCandidates},
		{"PeerCursor", testPeerCursor},
		{"AntiEntropyHelpers", testAntiEntropyHelpers},
		{"SourceStateAndMeta", testSourceStateAndMeta},
		{"UpdateSourceState", testUpdateSourceState},
		{"Migrations", testMigrations},
		{"ReaderIsReadOnly", testReaderIsReadOnly},
		{"PlaceholdersInLiterals", testPlaceholdersInLiterals},
		{"HostileText", testHostileText},
		{"LargeBatch", testLargeBatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

var (
	testDate = time.Unix(1_700_000_000, 0).UTC()
	testNow  = time.Unix(1_750_000_000, 123456789).UTC()
)

// ID returns a 64-hex-digit id for n (the shape of a real message id).
func ID(n int) string { return fmt.Sprintf("%064x", n) }

// Msg returns a NewMessage with fixed fields, the given origin and
// envelope recipients.
func Msg(id, origin string, rcpt ...string) catalog.NewMessage {
	return catalog.NewMessage{ID: id, Date: testDate, DateSource: "header", Arrival: testNow,
		Size: 10, From: "a@x.example", To: []string{"b@x.example"}, Subject: "s", MessageID: "<m@x>",
		Origin: origin, RcptTo: rcpt}
}

func commit(t *testing.T, c *catalog.Catalog, items ...catalog.NewMessage) []catalog.CommitResult {
	t.Helper()
	res, err := c.Commit(context.Background(), items)
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	if len(res) != len(items) {
		t.Fatalf("commit: %d results for %d items", len(res), len(items))
	}
	return res
}

func ids(ms []*catalog.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func testCommitDedupUnion(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	a := Msg(ID(1), "api")
	a.MailFrom = "Sender@X.example"
	a.Cc = []string{"c@x.example"}
	a.Attachments = []catalog.Attachment{{Filename: "r.pdf", ContentType: "application/pdf", Size: 3}}
	res := commit(t, c, a, Msg(ID(2), "smtp", "x@y.example"), Msg(ID(1), "smtp", "Z@Y.example", "a@y.example"))
	if res[0].Duplicate || res[1].Duplicate || !res[2].Duplicate || res[2].Seq != res[0].Seq || res[1].Seq != res[0].Seq+1 || res[0].Seq != 1 {
		t.Fatalf("results %+v", res)
	}
	m, err := c.Get(ctx, ID(1))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Origins, []string{"api", "smtp"}) || !slices.Equal(m.RcptTo, []string{"a@y.example", "z@y.example"}) ||
		!slices.Equal(m.MailFrom, []string{"sender@x.example"}) {
		t.Fatalf("union: origins %v rcpt %v from %v", m.Origins, m.RcptTo, m.MailFrom)
	}
	if m.Seq != 1 || !m.Date.Equal(testDate) || !m.Arrival.Equal(testNow) || m.DateSource != "header" || m.Size != 10 ||
		m.From != "a@x.example" || !slices.Equal(m.To, []string{"b@x.example"}) || !slices.Equal(m.Cc, []string{"c@x.example"}) ||
		len(m.Bcc) != 0 || m.Subject != "s" || m.MessageID != "<m@x>" ||
		len(m.Attachments) != 1 || m.Attachments[0] != a.Attachments[0] {
		t.Fatalf("row does not round-trip: %+v", m)
	}
	// The same item again adds nothing and reports a duplicate with the
	// original seq.
	res = commit(t, c, a)
	if !res[0].Duplicate || res[0].Seq != 1 || res[0].Purged {
		t.Fatalf("re-commit: %+v", res)
	}
	if m2, _ := c.Get(ctx, ID(1)); m2.MSeq != m.MSeq {
		t.Fatalf("mseq moved %d -> %d on a no-op duplicate", m.MSeq, m2.MSeq)
	}
	// Empty origin and envelope merge nothing.
	empty := Msg(ID(2), "")
	res = commit(t, c, empty)
	if !res[0].Duplicate {
		t.Fatalf("empty duplicate: %+v", res)
	}
	if _, err := c.Get(ctx, ID(99)); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	// An empty batch is fine.
	if res, err := c.Commit(ctx, nil); err != nil || len(res) != 0 {
		t.Fatalf("empty batch: %v %v", res, err)
	}
}

func testFeedOrderAndHead(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	if h, err := c.Head(ctx); err != nil || h != 0 {
		t.Fatalf("empty head %d %v", h, err)
	}
	for i := 1; i <= 25; i += 5 {
		var batch []catalog.NewMessage
		for j := i; j < i+5; j++ {
			batch = append(batch, Msg(ID(j), "import"))
		}
		batch = append(batch, Msg(ID(i), "again")) // in-batch duplicate
		commit(t, c, batch...)
	}
	var got []string
	var last int64
	for {
		page, err := c.FeedAfter(ctx, last, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, m := range page {
			if m.Seq <= last {
				t.Fatalf("feed not increasing: %d after %d", m.Seq, last)
			}
			last = m.Seq
			got = append(got, m.ID)
		}
	}
	if len(got) != 25 || got[0] != ID(1) || got[24] != ID(25) {
		t.Fatalf("feed %d entries: %v", len(got), got)
	}
	st, err := c.Stats(ctx)
	if err != nil || st.Messages != 25 || st.Bytes != 250 || st.Head != 25 || st.MSeq < 25 {
		t.Fatalf("stats %+v %v", st, err)
	}
	if h, err := c.Head(ctx); err != nil || h != 25 {
		t.Fatalf("head %d %v", h, err)
	}
	var walked []string
	err = c.Walk(ctx, func(id string, size int64) error {
		if size != 10 {
			t.Errorf("walk size %d", size)
		}
		walked = append(walked, id)
		return nil
	})
	if err != nil || !slices.Equal(walked, got) {
		t.Fatalf("walk %v %v", walked, err)
	}
	stop := errors.New("stop")
	if err := c.Walk(ctx, func(string, int64) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("walk error not returned: %v", err)
	}
}

func testChangedAfter(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	commit(t, c, Msg(ID(1), "api"), Msg(ID(2), "smtp"))
	commit(t, c, Msg(ID(1), "smtp")) // metadata grows: a moves past b
	ch, err := c.ChangedAfter(ctx, 0, 10)
	if err != nil || !slices.Equal(ids(ch), []string{ID(2), ID(1)}) {
		t.Fatalf("changes %v %v", ids(ch), err)
	}
	if ch[0].MSeq >= ch[1].MSeq {
		t.Fatalf("mseq order %d %d", ch[0].MSeq, ch[1].MSeq)
	}
	if n, err := c.CountChangedAfter(ctx, ch[0].MSeq); err != nil || n != 1 {
		t.Fatalf("count changed %d %v", n, err)
	}
	if ch2, err := c.ChangedAfter(ctx, ch[0].MSeq, 10); err != nil || len(ch2) != 1 || ch2[0].ID != ID(1) {
		t.Fatalf("changes after %d: %v %v", ch[0].MSeq, ch2, err)
	}
	if ch3, err := c.ChangedAfter(ctx, 0, 1); err != nil || len(ch3) != 1 {
		t.Fatalf("limit: %v %v", ch3, err)
	}
	st, _ := c.Stats(ctx)
	if st.MSeq != ch[1].MSeq {
		t.Fatalf("stats mseq %d, newest %d", st.MSeq, ch[1].MSeq)
	}
}

func testLookups(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	commit(t, c, Msg(ID(1), "a"), Msg(ID(2), "b"), Msg(ID(3), "c"))
	ex, err := c.Exists(ctx, []string{ID(1), ID(3), ID(4)})
	if err != nil || !ex[ID(1)] || !ex[ID(3)] || ex[ID(4)] || len(ex) != 2 {
		t.Fatalf("exists %v %v", ex, err)
	}
	if ex, err := c.Exists(ctx, nil); err != nil || len(ex) != 0 {
		t.Fatalf("exists nil %v %v", ex, err)
	}
	ms, err := c.GetMany(ctx, []string{ID(3), ID(9), ID(1)})
	if err != nil || !slices.Equal(ids(ms), []string{ID(3), ID(1)}) || ms[0].Origins[0] != "c" {
		t.Fatalf("get many %v %v", ids(ms), err)
	}
	if ms, err := c.GetMany(ctx, nil); err != nil || len(ms) != 0 {
		t.Fatalf("get many nil %v %v", ms, err)
	}
	byID, err := c.MessagesByID(ctx, []string{ID(2), ID(7)})
	if err != nil || len(byID) != 1 || byID[ID(2)] == nil || byID[ID(2)].Origins[0] != "b" {
		t.Fatalf("messages by id %v %v", byID, err)
	}
}

func testJournalReports(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	r1, r2 := ID(1001), ID(1002)
	a, b, d := Msg(ID(1), "journal"), Msg(ID(2), "journal"), Msg(ID(3), "journal")
	a.ReportID, b.ReportID, d.ReportID = r1, r1, r2
	commit(t, c, a, b, d)
	rep, err := c.ReportIDs(ctx)
	slices.Sort(rep)
	if err != nil || !slices.Equal(rep, []string{r1, r2}) {
		t.Fatalf("report ids %v %v", rep, err)
	}
	own, err := c.ReportOwners(ctx, r1)
	if err != nil || !slices.Equal(ids(own), []string{ID(1), ID(2)}) {
		t.Fatalf("owners %v %v", ids(own), err)
	}
	if m, _ := c.Get(ctx, ID(3)); m == nil || !slices.Equal(m.Reports, []string{r2}) {
		t.Fatalf("reports of 3: %+v", m)
	}
}

func testPurgeAndTombstones(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	r1, r2 := ID(1001), ID(1002)
	a, b, d := Msg(ID(0xa1), "journal"), Msg(ID(0xa2), "journal"), Msg(ID(0xb3), "smtp", "r@x")
	a.ReportID, b.ReportID, d.ReportID = r1, r1, r2
	commit(t, c, a, b, d)
	at := time.Unix(1_760_000_000, 0)
	// Purging a (r1 still referenced by b) and d (r2 orphaned), plus an id
	// never held (tombstoned all the same).
	orphans, err := c.Purge(ctx, []string{ID(0xa1), ID(0xb3), ID(0xc4)}, "retention", at)
	if err != nil || !slices.Equal(orphans, []string{r2}) {
		t.Fatalf("purge orphans %v %v", orphans, err)
	}
	if _, err := c.Get(ctx, ID(0xa1)); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("purged message still there: %v", err)
	}
	ts, err := c.IsTombstoned(ctx, []string{ID(0xa1), ID(0xa2), ID(0xb3), ID(0xc4)})
	if err != nil || len(ts) != 3 || ts[ID(0xa2)] {
		t.Fatalf("tombstoned %v %v", ts, err)
	}
	if ts, err := c.IsTombstoned(ctx, nil); err != nil || len(ts) != 0 {
		t.Fatalf("tombstoned nil %v %v", ts, err)
	}
	// Purging again is harmless.
	if orphans, err := c.Purge(ctx, []string{ID(0xa1)}, "again", at); err != nil || len(orphans) != 0 {
		t.Fatalf("re-purge %v %v", orphans, err)
	}
	if orphans, err := c.Purge(ctx, nil, "nothing", at); err != nil || orphans != nil {
		t.Fatalf("empty purge %v %v", orphans, err)
	}
	// A tombstoned id is never stored again, and the head does not move
	// back (seqs are never reused).
	res := commit(t, c, Msg(ID(0xa1), "api"), Msg(ID(0xd5), "api"))
	if !res[0].Purged || res[0].Duplicate || res[1].Purged || res[1].Seq != 4 {
		t.Fatalf("commit after purge %+v", res)
	}
	feed, err := c.FeedAfter(ctx, 0, 10)
	if err != nil || !slices.Equal(ids(feed), []string{ID(0xa2), ID(0xd5)}) {
		t.Fatalf("feed after purge %v %v", ids(feed), err)
	}
	var walked []string
	if err := c.WalkTombstones(ctx, "", func(id string) error { walked = append(walked, id); return nil }); err != nil || len(walked) != 3 {
		t.Fatalf("walk tombstones %v %v", walked, err)
	}
	walked = nil
	prefix := ID(0xa1)[:63] // ...a
	if err := c.WalkTombstones(ctx, prefix, func(id string) error { walked = append(walked, id); return nil }); err != nil ||
		!slices.Equal(walked, []string{ID(0xa1)}) {
		t.Fatalf("walk tombstones %q: %v %v", prefix, walked, err)
	}
	if r, _ := c.ReportOwners(ctx, r2); len(r) != 0 {
		t.Fatalf("report link of a purged message survived: %v", ids(r))
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.Scrub(sctx); err != nil {
		t.Fatalf("scrub: %v", err)
	}
	if st, _ := c.Stats(ctx); st.Messages != 2 || st.Head != 4 {
		t.Fatalf("stats after purge %+v", st)
	}
}

func testCandidates(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	var batch []catalog.NewMessage
	for i := 1; i <= 6; i++ {
		m := Msg(ID(i), "import")
		m.Date = testDate.AddDate(0, 0, i) // day i
		batch = append(batch, m)
	}
	commit(t, c, batch...)
	cutoff := testDate.AddDate(0, 0, 5) // days 1..4 are older
	got, err := c.Candidates(ctx, cutoff, 0, 3)
	if err != nil || len(got) != 3 || got[0].ID != ID(1) || got[2].Seq != 3 || !got[0].Date.Equal(testDate.AddDate(0, 0, 1)) {
		t.Fatalf("candidates %+v %v", got, err)
	}
	got, err = c.Candidates(ctx, cutoff, got[2].Seq, 3)
	if err != nil || len(got) != 1 || got[0].ID != ID(4) || got[0].MSeq == 0 {
		t.Fatalf("candidates page 2 %+v %v", got, err)
	}
	var inRange []string
	err = c.WalkIDsByDate(ctx, testDate.AddDate(0, 0, 2).Unix(), testDate.AddDate(0, 0, 4).Unix(), func(id string, date int64) error {
		inRange = append(inRange, id)
		return nil
	})
	slices.Sort(inRange)
	if err != nil || !slices.Equal(inRange, []string{ID(2), ID(3)}) {
		t.Fatalf("walk ids by date %v %v", inRange, err)
	}
}

func testPeerCursor(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	if s, err := c.PeerCursor(ctx, "b"); err != nil || s != 0 {
		t.Fatalf("new peer cursor %d %v", s, err)
	}
	for _, s := range []int64{5, 3, 9, 7} {
		if err := c.SetPeerCursor(ctx, "b", s); err != nil {
			t.Fatal(err)
		}
	}
	if s, err := c.PeerCursor(ctx, "b"); err != nil || s != 9 {
		t.Fatalf("cursor moved backwards or lost: %d %v", s, err)
	}
	if s, _ := c.PeerCursor(ctx, "other"); s != 0 {
		t.Fatalf("cursors not per peer: %d", s)
	}
	if err := c.ResetPeerCursor(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if s, _ := c.PeerCursor(ctx, "b"); s != 0 {
		t.Fatalf("reset cursor %d", s)
	}
	if err := c.ResetPeerCursor(ctx, "new"); err != nil {
		t.Fatal(err)
	}
	// Pushable: a message that reached us only from peers is not pushed on.
	early := Msg(ID(1), "smtp")
	early.Arrival = testNow.Add(-time.Hour)
	commit(t, c, early, Msg(ID(2), "peer:b"), Msg(ID(3), "peer:b"), Msg(ID(4), ""))
	commit(t, c, Msg(ID(3), "api"))
	n, oldest, err := c.PushableAfter(ctx, 0)
	if err != nil || n != 3 || !oldest.Equal(early.Arrival) {
		t.Fatalf("pushable after 0: %d %v %v", n, oldest, err)
	}
	n, oldest, err = c.PushableAfter(ctx, 4)
	if err != nil || n != 0 || !oldest.IsZero() {
		t.Fatalf("pushable after head: %d %v %v", n, oldest, err)
	}
}

func testAntiEntropyHelpers(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	var batch []catalog.NewMessage
	for i := 1; i <= 700; i++ { // MessagesByID works in batches of 500
		batch = append(batch, Msg(ID(i), "import"))
	}
	commit(t, c, batch...)
	want := make([]string, 0, 701)
	for _, m := range batch {
		want = append(want, m.ID)
	}
	want = append(want, ID(5000))
	got, err := c.MessagesByID(ctx, want)
	if err != nil || len(got) != 700 || got[ID(700)] == nil || got[ID(5000)] != nil {
		t.Fatalf("messages by id: %d %v", len(got), err)
	}
	n := 0
	err = c.WalkIDsByDate(ctx, testDate.Unix(), testDate.Unix()+1, func(string, int64) error { n++; return nil })
	if err != nil || n != 700 {
		t.Fatalf("walk by date %d %v", n, err)
	}
}

func testSourceStateAndMeta(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	if err := c.SetSourceState(ctx, "j", map[string]string{"INBOX": "1:5", "x": "y"}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetSourceState(ctx, "j", map[string]string{"x": "", "INBOX": "1:7"}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetSourceState(ctx, "k", map[string]string{"INBOX": "other"}); err != nil {
		t.Fatal(err)
	}
	st, err := c.SourceState(ctx, "j")
	if err != nil || len(st) != 1 || st["INBOX"] != "1:7" {
		t.Fatalf("state %v %v", st, err)
	}
	if st, err := c.SourceState(ctx, "none"); err != nil || len(st) != 0 {
		t.Fatalf("unknown source %v %v", st, err)
	}
	if v, err := c.Meta(ctx, "k"); err != nil || v != "" {
		t.Fatalf("unset meta %q %v", v, err)
	}
	for _, v := range []string{"v1", "v2"} {
		if err := c.SetMeta(ctx, "k", v); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := c.Meta(ctx, "k"); err != nil || v != "v2" {
		t.Fatalf("meta %q %v", v, err)
	}
	// InitMeta keeps the first value written.
	if v, err := c.InitMeta(ctx, "once", "first"); err != nil || v != "first" {
		t.Fatalf("InitMeta on an absent key: %q %v", v, err)
	}
	if v, err := c.InitMeta(ctx, "once", "second"); err != nil || v != "first" {
		t.Fatalf("InitMeta on a present key: %q %v, want the first value", v, err)
	}
	if v, err := c.InitMeta(ctx, "k", "v3"); err != nil || v != "v2" {
		t.Fatalf("InitMeta over SetMeta's value: %q %v", v, err)
	}
}

func testUpdateSourceState(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	bump := func(cur map[string]string) (map[string]string, error) {
		n := 0
		fmt.Sscan(cur["lease.epoch"], &n)
		return map[string]string{"lease.epoch": fmt.Sprint(n + 1), "gone": ""}, nil
	}
	if err := c.SetSourceState(ctx, "s", map[string]string{"gone": "x"}); err != nil {
		t.Fatal(err)
	}
	const workers, rounds = 4, 10
	errs := make(chan error, workers)
	for range workers {
		go func() {
			for range rounds {
				if err := c.UpdateSourceState(ctx, "s", bump); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	st, err := c.SourceState(ctx, "s")
	if err != nil || st["lease.epoch"] != fmt.Sprint(workers*rounds) || len(st) != 1 {
		t.Fatalf("state after updates %v %v", st, err)
	}
	refuse := errors.New("lost")
	err = c.UpdateSourceState(ctx, "s", func(map[string]string) (map[string]string, error) {
		return map[string]string{"lease.epoch": "0"}, refuse
	})
	if !errors.Is(err, refuse) {
		t.Fatalf("fn error not returned: %v", err)
	}
	if st, _ := c.SourceState(ctx, "s"); st["lease.epoch"] != fmt.Sprint(workers*rounds) {
		t.Fatalf("failed update wrote: %v", st)
	}
}

func testMigrations(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	steps := []string{`CREATE TABLE t1 (x INTEGER)`, `ALTER TABLE t1 ADD COLUMN y TEXT`}
	for range 2 { // idempotent
		if err := c.Migrate(ctx, "test", steps); err != nil {
			t.Fatal(err)
		}
	}
	w, r := c.DB()
	if _, err := w.ExecContext(ctx, `INSERT INTO t1(x, y) VALUES (?, ?)`, 1, "a"); err != nil {
		t.Fatalf("migrated table: %v", err)
	}
	var y string
	if err := r.QueryRowContext(ctx, `SELECT y FROM t1 WHERE x=?`, 1).Scan(&y); err != nil || y != "a" {
		t.Fatalf("migrated table: %q %v", y, err)
	}
	if err := c.Migrate(ctx, "test", steps[:1]); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("an older release must refuse a newer schema: %v", err)
	}
	// A failing script leaves nothing behind and is retried next time.
	bad := []string{`CREATE TABLE t2 (x INTEGER); CREATE TABLE (`}
	if err := c.Migrate(ctx, "broken", bad); err == nil {
		t.Fatal("bad migration accepted")
	}
	if err := c.Migrate(ctx, "broken", []string{`CREATE TABLE t2 (x INTEGER)`}); err != nil {
		t.Fatalf("migration after a failed one: %v", err)
	}
	// Per-dialect scripts.
	if err := c.MigrateDialects(ctx, "dialect", []string{`CREATE TABLE t3 (x INTEGER) WITHOUT ROWID`}, []string{`CREATE TABLE t3 (x BIGINT)`}); err == nil {
		// SQLite refuses WITHOUT ROWID without a primary key, PostgreSQL
		// gets its own script; only the PostgreSQL one succeeds.
		if c.Dialect() != catalog.Postgres {
			t.Fatal("the SQLite script was not the one run")
		}
	} else if c.Dialect() != catalog.SQLite {
		t.Fatalf("postgres script: %v", err)
	}
	if err := c.MigrateDialects(ctx, "uneven", []string{`SELECT 1`}, nil); err == nil {
		t.Fatal("uneven per-dialect migrations accepted")
	}
	// Reopening a catalog re-runs core migrations as no-ops: covered by
	// RunConcurrent, which opens the same database twice.
}

func testReaderIsReadOnly(t *testing.T, c *catalog.Catalog) {
	_, r := c.DB()
	if _, err := r.ExecContext(context.Background(), `INSERT INTO meta(key, value) VALUES ('x', 'y')`); err == nil {
		t.Fatal("write through the reader handle succeeded")
	}
}

func testPlaceholdersInLiterals(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	w, r := c.DB()
	// A "?" inside a literal, an identifier or a comment is not a
	// placeholder.
	if _, err := w.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES (?, 'what? ''really?''') -- trailing ?`, "q?"); err != nil {
		t.Fatal(err)
	}
	var v string
	if err := r.QueryRowContext(ctx, `SELECT value /* ? */ FROM meta AS "m?" WHERE key=? AND value <> '?'`, "q?").Scan(&v); err != nil || v != "what? 'really?'" {
		t.Fatalf("value %q %v", v, err)
	}
}

func testHostileText(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	m := Msg(ID(1), "smtp\x00", "bad\xffrcpt@x")
	m.Subject = "nul \x00 and \xc3\x28 invalid"
	m.From = "\xfe@x"
	m.To = []string{"\x00@x"}
	m.MailFrom = "s\x00@x"
	res, err := c.Commit(ctx, []catalog.NewMessage{m})
	if err != nil || res[0].Duplicate || res[0].Seq != 1 {
		t.Fatalf("a message with NUL and invalid UTF-8 headers was refused: %+v %v", res, err)
	}
	got, err := c.Get(ctx, ID(1))
	if err != nil || !strings.HasPrefix(got.Subject, "nul ") || len(got.RcptTo) != 1 || len(got.Origins) != 1 {
		t.Fatalf("get %+v %v", got, err)
	}
	// Committing the same hostile item again is a clean duplicate.
	if res, err := c.Commit(ctx, []catalog.NewMessage{m}); err != nil || !res[0].Duplicate {
		t.Fatalf("re-commit %+v %v", res, err)
	}
	if got2, _ := c.Get(ctx, ID(1)); got2.MSeq != got.MSeq {
		t.Fatal("re-committing hostile metadata changed it")
	}
}

func testLargeBatch(t *testing.T, c *catalog.Catalog) {
	ctx := context.Background()
	var batch []catalog.NewMessage
	for i := range 3000 {
		batch = append(batch, Msg(ID(i), "import", fmt.Sprintf("r%d@x", i%7)))
	}
	commit(t, c, batch...)
	all := make([]string, 0, len(batch))
	for _, m := range batch {
		all = append(all, m.ID)
	}
	ex, err := c.Exists(ctx, all)
	if err != nil || len(ex) != 3000 {
		t.Fatalf("exists over chunks: %d %v", len(ex), err)
	}
	ms, err := c.GetMany(ctx, all[:900])
	if err != nil || len(ms) != 900 || len(ms[899].RcptTo) != 1 {
		t.Fatalf("get many: %d %v", len(ms), err)
	}
	feed, err := c.FeedAfter(ctx, 0, 2500) // more than one loadExtras chunk
	if err != nil || len(feed) != 2500 || feed[2499].Origins[0] != "import" || len(feed[2499].RcptTo) != 1 {
		t.Fatalf("feed: %d %v", len(feed), err)
	}

	// A second large batch mixing, across Commit's lookup chunks: known ids,
	// purged ids, new ids, and new ids repeated later in the same batch.
	if _, err := c.Purge(ctx, []string{ID(10), ID(2990)}, "retention", testNow); err != nil {
		t.Fatal(err)
	}
	batch = nil
	for i := range 1200 {
		switch {
		case i%3 == 0:
			batch = append(batch, Msg(ID(i), "again")) // known (10 and 2990 aside: purged)
		default:
			batch = append(batch, Msg(ID(10_000+i), "new"))
		}
	}
	batch = append(batch, Msg(ID(10), "again"), Msg(ID(2990), "again"), Msg(ID(10_001), "repeat"), Msg(ID(11_199), "repeat"))
	res := commit(t, c, batch...)
	newSeq := map[string]int64{}
	for i, r := range res {
		id := batch[i].ID
		switch {
		case id == ID(10) || id == ID(2990):
			if !r.Purged {
				t.Fatalf("item %d (purged id) not reported purged: %+v", i, r)
			}
		case batch[i].Origin == "again":
			if !r.Duplicate || r.Purged || r.Seq != int64(i+1) {
				t.Fatalf("item %d (known id, seq %d) = %+v", i, i+1, r)
			}
		case batch[i].Origin == "new":
			if r.Duplicate || r.Purged || r.Seq <= 3000 {
				t.Fatalf("item %d (new id) = %+v", i, r)
			}
			newSeq[id] = r.Seq
		default: // "repeat": a new id of this batch, seen again
			if !r.Duplicate || r.Seq != newSeq[id] {
				t.Fatalf("item %d (repeated new id, seq %d) = %+v", i, newSeq[id], r)
			}
		}
	}
	if m, err := c.Get(ctx, ID(11_199)); err != nil || !slices.Equal(m.Origins, []string{"new", "repeat"}) {
		t.Fatalf("repeated id in one batch: %+v %v", m, err)
	}
}
