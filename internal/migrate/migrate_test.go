package migrate_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/audit"
	"github.com/mailarc/mailarc/internal/auth"
	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/config"
	"github.com/mailarc/mailarc/internal/governance"
	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/migrate"
	"github.com/mailarc/mailarc/internal/server"
	"github.com/mailarc/mailarc/internal/testutil"
	"github.com/mailarc/mailarc/internal/testutil/pgtest"
	"github.com/mailarc/mailarc/internal/testutil/s3test"
	"github.com/mailarc/mailarc/internal/web"
)

var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

// corpusMessages reads up to n messages from the shared corpus, from both
// mailing lists (plain patches and multipart mail with attachments).
func corpusMessages(t *testing.T, n int) [][]byte {
	t.Helper()
	root := testutil.Corpus(t)
	var out [][]byte
	for _, dir := range []string{"real/btrfs/000", "real/usrp/000"} {
		files, err := filepath.Glob(filepath.Join(root, dir, "*.eml"))
		if err != nil {
			t.Fatal(err)
		}
		testutil.Require(t, len(files) > 0, "no messages in "+dir+" of the corpus")
		sort.Strings(files)
		for _, f := range files[:min(len(files), n/2)] {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
	}
	return out
}

// writeConfig writes a TOML config and loads it as the CLI does.
func writeConfig(t *testing.T, text string) config.Config {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mailarc.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(p, nil)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, text)
	}
	return cfg
}

func embeddedConfig(t *testing.T) config.Config {
	return writeConfig(t, fmt.Sprintf("node_name = \"emb\"\ndata_dir = %q\n", t.TempDir()))
}

func scaleConfig(t *testing.T, g *s3test.Gateway) config.Config {
	dsnFile := filepath.Join(t.TempDir(), "dsn")
	if err := os.WriteFile(dsnFile, []byte(pg.Get(t).CreateDB(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	return writeConfig(t, fmt.Sprintf("node_name = \"scale\"\ndata_dir = %q\n%s\n[catalog]\nbackend = \"postgres\"\ndsn_file = %q\n",
		t.TempDir(), g.StoreTOML(t, g.Bucket(t, true, false), "arc/"), dsnFile))
}

func open(t *testing.T, cfg config.Config) *server.Node {
	t.Helper()
	n, err := server.Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func closeNode(t *testing.T, n *server.Node) {
	t.Helper()
	if err := n.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// seed fills an embedded archive: corpus mail, a purged message (a
// tombstone and a gap at the feed head), users and a token, a hold, a
// retention policy, audit entries, a peer cursor and pull source state.
func seed(t *testing.T, n *server.Node, msgs [][]byte) (lockedPurge string) {
	t.Helper()
	ctx := context.Background()
	var last string
	var ids []string
	for i, raw := range msgs {
		r, err := n.Archive.Ingest(ctx, raw, archive.Origin{Source: "import", MailFrom: fmt.Sprintf("s%d@example.org", i%3), RcptTo: []string{"journal@example.org"}})
		if err != nil {
			t.Fatal(err)
		}
		last = r.ID
		ids = append(ids, r.ID)
	}
	// A second origin for one message (metadata union).
	if _, err := n.Archive.Ingest(ctx, msgs[0], archive.Origin{Source: "smtp", RcptTo: []string{"other@example.org"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Catalog.Purge(ctx, []string{last}, "test purge", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := n.Store.Delete(ctx, []string{last}); err != nil {
		t.Fatal(err)
	}
	if err := n.Auth.AddUser(ctx, "alice", "correct-horse-battery", auth.RoleUser, []string{"alice@example.org"}); err != nil {
		t.Fatal(err)
	}
	if err := n.Auth.AddUser(ctx, "audrey", "correct-horse-staple", auth.RoleAuditor, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.Auth.CreateToken(ctx, "alice", "script"); err != nil {
		t.Fatal(err)
	}
	gov, al, err := n.Governance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gov.SetRetention(ctx, "admin", governance.Retention{Default: "10y", Policies: []governance.Policy{{Name: "patches", Query: "subject:PATCH", Keep: "20y"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := gov.CreateHold(ctx, "audrey", governance.HoldSpec{Name: "case 7", Description: "litigation", Query: "from:example.com", After: "2019-01-01"}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := al.Record(ctx, "audrey", audit.ActionSearch, map[string]any{"query": fmt.Sprintf("q%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Catalog.SetPeerCursor(ctx, "peer-b", 7); err != nil {
		t.Fatal(err)
	}
	if err := n.Catalog.SetSourceState(ctx, "imap:journal", map[string]string{"uidvalidity": "42", "uid": "1001"}); err != nil {
		t.Fatal(err)
	}
	if err := n.NewIndexer().CatchUp(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// Store-bound WORM state, which must not be copied, and a purged
	// message whose object deletion the store refused (still in the store,
	// listed in store_deletes), which must not reach the destination store.
	lockedPurge = ids[1]
	if _, err := n.Catalog.Purge(ctx, []string{lockedPurge}, "test purge", time.Now()); err != nil {
		t.Fatal(err)
	}
	w, _ := n.Catalog.DB()
	for _, q := range []string{
		`INSERT INTO worm_objects(id, retain_until, legal_hold) VALUES ('` + ids[2] + `', 4102444800, 1)`,
		`INSERT INTO governance_state(key, value) VALUES ('worm', '{"cursor":3}') ON CONFLICT(key) DO UPDATE SET value=excluded.value`,
		`INSERT INTO store_deletes(id, since, tries, error) VALUES ('` + lockedPurge + `', 1, 1, 'locked')`,
	} {
		if _, err := w.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(n.Dir.Join("tls"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.Dir.Join("tls", "mirror-key.pem"), []byte("key"), 0o600); err != nil {
		t.Fatal(err)
	}
	return lockedPurge
}

// checkStoreBound checks that the store-bound state stayed behind.
func checkStoreBound(t *testing.T, n *server.Node, lockedPurge string) {
	t.Helper()
	ctx := context.Background()
	if ok, err := n.Store.Has(ctx, lockedPurge); err != nil || ok {
		t.Errorf("the object of a purged message reached the destination store (%v, %v)", ok, err)
	}
	_, r := n.Catalog.DB()
	var worm, state, deletes int
	if err := r.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM worm_objects), (SELECT count(*) FROM governance_state WHERE key='worm'), (SELECT count(*) FROM store_deletes)`).Scan(&worm, &state, &deletes); err != nil {
		t.Fatal(err)
	}
	if worm != 0 || state != 0 || deletes != 1 {
		t.Errorf("destination: %d worm_objects rows, %d worm state rows, %d store_deletes rows; want 0, 0, 1", worm, state, deletes)
	}
	if b, err := os.ReadFile(n.Dir.Join("tls", "mirror-key.pem")); err != nil || string(b) != "key" {
		t.Errorf("tls files not copied: %q, %v", b, err)
	}
}

// snapshot is what must survive a migration unchanged.
type snapshot struct {
	head     int64
	messages map[string]*catalog.Message
	raw      map[string]string
	users    []auth.User
	holds    []*governance.Hold
	policy   governance.State
	audit    audit.Report
	search   map[string][]string
}

var queries = []string{"btrfs", "subject:PATCH", "from:example.com", "usrp"}

func take(t *testing.T, n *server.Node) snapshot {
	t.Helper()
	ctx := context.Background()
	s := snapshot{messages: map[string]*catalog.Message{}, raw: map[string]string{}, search: map[string][]string{}}
	var err error
	if s.head, err = n.Catalog.Head(ctx); err != nil {
		t.Fatal(err)
	}
	var ids []string
	if err := n.Catalog.WalkIDs(ctx, func(id string) error { ids = append(ids, id); return nil }); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		m, err := n.Catalog.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		s.messages[id] = m
		raw, err := n.Archive.Raw(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		s.raw[id] = string(raw)
	}
	if s.users, err = n.Auth.List(ctx); err != nil {
		t.Fatal(err)
	}
	gov, _, err := n.Governance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.holds, err = gov.Holds(ctx, true); err != nil {
		t.Fatal(err)
	}
	if s.policy, err = gov.Retention(ctx); err != nil {
		t.Fatal(err)
	}
	if s.audit, err = audit.Verify(ctx, n.Catalog); err != nil {
		t.Fatal(err)
	}
	for _, q := range queries {
		res, err := n.Searcher().Search(ctx, web.SearchRequest{Query: q, User: &auth.User{Name: "admin", Role: auth.RoleAdmin}, Limit: 1000, NoSnippets: true, ExactCount: true, Sort: "date"})
		if err != nil {
			t.Fatalf("search %q: %v", q, err)
		}
		var hits []string
		for _, h := range res.Messages {
			hits = append(hits, h.ID)
		}
		sort.Strings(hits)
		s.search[q] = hits
	}
	return s
}

func same(t *testing.T, what string, want, got snapshot) {
	t.Helper()
	if got.head != want.head {
		t.Errorf("%s: feed head %d, want %d", what, got.head, want.head)
	}
	if len(got.messages) != len(want.messages) {
		t.Errorf("%s: %d messages, want %d", what, len(got.messages), len(want.messages))
	}
	for id, m := range want.messages {
		g := got.messages[id]
		if !reflect.DeepEqual(g, m) {
			t.Errorf("%s: message %s metadata\n got  %+v\n want %+v", what, id, g, m)
		}
		if got.raw[id] != want.raw[id] {
			t.Errorf("%s: message %s bytes differ", what, id)
		}
	}
	if !reflect.DeepEqual(got.users, want.users) {
		t.Errorf("%s: users\n got  %+v\n want %+v", what, got.users, want.users)
	}
	if !reflect.DeepEqual(got.holds, want.holds) {
		t.Errorf("%s: holds\n got  %+v\n want %+v", what, got.holds, want.holds)
	}
	if !reflect.DeepEqual(got.policy, want.policy) {
		t.Errorf("%s: retention\n got  %+v\n want %+v", what, got.policy, want.policy)
	}
	if !got.audit.OK() || got.audit.Entries != want.audit.Entries || got.audit.HeadHash != want.audit.HeadHash {
		t.Errorf("%s: audit %+v, want %+v", what, got.audit, want.audit)
	}
	for _, q := range queries {
		if !reflect.DeepEqual(got.search[q], want.search[q]) {
			t.Errorf("%s: search %q: %d hits, want %d", what, q, len(got.search[q]), len(want.search[q]))
		}
	}
}

func runOK(t *testing.T, src, dst *server.Node, opt migrate.Options) *migrate.Result {
	t.Helper()
	res, err := migrate.Run(context.Background(), src, dst, opt)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Report.OK() {
		t.Fatalf("verification failed: %d problems: %s", res.Report.Problems, strings.Join(res.Report.Listed, "; "))
	}
	return res
}

// TestRoundTrip moves an embedded archive onto PostgreSQL + S3,
// interrupting the first run twice, then back onto a new embedded data
// directory, and checks that everything survived both moves.
func TestRoundTrip(t *testing.T) {
	testutil.Require(t, index.FTS5Compiled(), "this test binary was built without -tags sqlite_fts5")
	msgs := corpusMessages(t, 120)
	g := s3test.Start(t)
	t0 := time.Now()

	embCfg := embeddedConfig(t)
	src := open(t, embCfg)
	locked := seed(t, src, msgs)
	want := take(t, src)
	if want.head <= int64(len(want.messages)) || len(want.search["btrfs"]) == 0 {
		t.Fatalf("seed: head %d, %d messages, %d hits: expected a purged tail and search hits", want.head, len(want.messages), len(want.search["btrfs"]))
	}
	closeNode(t, src)
	t.Logf("seeded %d messages in %s", len(want.messages), time.Since(t0))

	// Embedded -> PostgreSQL + S3, interrupted in the blob phase and in the
	// catalog phase (the nodes are closed in between, as after kill -9).
	scaleCfg := scaleConfig(t, g)
	opt := migrate.Options{BatchRows: 25, BatchBlobs: 16}
	for _, stopIn := range []string{migrate.PhaseBlobs, migrate.PhaseCatalog} {
		src, dst := open(t, embCfg), open(t, scaleCfg)
		ctx, cancel := context.WithCancel(context.Background())
		batches := 0
		o := opt
		o.Progress = func(p migrate.Progress) {
			if p.Phase == stopIn && p.Done > 0 {
				if batches++; batches == 3 {
					cancel()
				}
			}
		}
		_, err := migrate.Run(ctx, src, dst, o)
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted run in %s: err %v, want context.Canceled", stopIn, err)
		}
		st, err := dst.Catalog.Meta(context.Background(), migrate.StateKey)
		if err != nil || !strings.Contains(st, `"phase":"`+stopIn+`"`) {
			t.Fatalf("state after interrupting %s: %s (%v)", stopIn, st, err)
		}
		closeNode(t, src)
		closeNode(t, dst)
	}
	src, dst := open(t, embCfg), open(t, scaleCfg)
	res := runOK(t, src, dst, opt)
	// Blobs walked: every message's plus the one of the purged message
	// whose deletion was refused (walked, not copied).
	if !res.Resumed || res.Blobs != int64(len(want.messages))+1 {
		t.Errorf("resumed run: resumed %v, %d blobs, want %d", res.Resumed, res.Blobs, len(want.messages)+1)
	}
	res = runOK(t, src, dst, opt)
	if !res.Already || res.Rows != 0 {
		t.Errorf("re-run after completion: already %v, copied %d rows", res.Already, res.Rows)
	}
	closeNode(t, src)
	same(t, "on PostgreSQL + S3", want, take(t, dst))
	checkStoreBound(t, dst, locked)
	if res.Report.PurgedBlobs != 1 {
		t.Errorf("verification counted %d purged blobs left behind, want 1", res.Report.PurgedBlobs)
	}
	closeNode(t, dst)
	t.Logf("embedded -> PostgreSQL + S3 in %s", time.Since(t0))

	// PostgreSQL + S3 -> a new embedded data directory.
	t1 := time.Now()
	back := embeddedConfig(t)
	src, dst = open(t, scaleCfg), open(t, back)
	runOK(t, src, dst, migrate.Options{})
	closeNode(t, src)
	got := take(t, dst)
	same(t, "back on embedded", want, got)
	checkStoreBound(t, dst, locked)

	// New mail gets a fresh seq past the copied head (purged numbers are
	// never reused).
	r, err := dst.Archive.Ingest(context.Background(), []byte("From: new@example.org\r\nSubject: after the move\r\nMessage-ID: <new@x>\r\n\r\nhello\r\n"), archive.Origin{Source: "api"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Seq != want.head+1 {
		t.Errorf("first message after the migration got seq %d, want %d", r.Seq, want.head+1)
	}
	closeNode(t, dst)
	t.Logf("PostgreSQL + S3 -> embedded in %s", time.Since(t1))
}

// TestRefusals checks that migrate refuses a non-empty destination and the
// same archive as source and destination.
func TestRefusals(t *testing.T) {
	testutil.Require(t, index.FTS5Compiled(), "this test binary was built without -tags sqlite_fts5")
	ctx := context.Background()
	a, b := embeddedConfig(t), embeddedConfig(t)
	for _, cfg := range []config.Config{a, b} {
		n := open(t, cfg)
		if _, err := n.Archive.Ingest(ctx, []byte("Subject: x "+cfg.DataDir+"\r\n\r\nbody\r\n"), archive.Origin{Source: "api"}); err != nil {
			t.Fatal(err)
		}
		closeNode(t, n)
	}
	src, dst := open(t, a), open(t, b)
	defer closeNode(t, src)
	defer closeNode(t, dst)
	if _, err := migrate.Run(ctx, src, dst, migrate.Options{}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("non-empty destination: err %v", err)
	}
	if _, err := migrate.Run(ctx, src, src, migrate.Options{}); err == nil || !strings.Contains(err.Error(), "same") {
		t.Errorf("same node: err %v", err)
	}
}

// TestVerifyFindsDifferences: after a clean migration, a blob removed from
// the destination store and a message only the destination holds are both
// reported, naming their ids.
func TestVerifyFindsDifferences(t *testing.T) {
	testutil.Require(t, index.FTS5Compiled(), "this test binary was built without -tags sqlite_fts5")
	ctx := context.Background()
	a, b := embeddedConfig(t), embeddedConfig(t)
	n := open(t, a)
	var ids []string
	for i := range 5 {
		r, err := n.Archive.Ingest(ctx, []byte(fmt.Sprintf("Subject: verify %d\r\n\r\nbody %d\r\n", i, i)), archive.Origin{Source: "api"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	closeNode(t, n)
	src, dst := open(t, a), open(t, b)
	defer closeNode(t, src)
	defer closeNode(t, dst)
	runOK(t, src, dst, migrate.Options{})

	if err := dst.Store.Delete(ctx, []string{ids[2]}); err != nil {
		t.Fatal(err)
	}
	extra, err := dst.Archive.Ingest(ctx, []byte("Subject: only here\r\n\r\nbody\r\n"), archive.Origin{Source: "api"})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := migrate.Verify(ctx, src, dst, migrate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	listed := strings.Join(rep.Listed, "\n")
	if rep.OK() || !strings.Contains(listed, ids[2]) || !strings.Contains(listed, extra.ID) {
		t.Fatalf("verify after damage: OK=%v, problems:\n%s\nwant %s (blob deleted) and %s (extra message) named", rep.OK(), listed, ids[2], extra.ID)
	}
}
