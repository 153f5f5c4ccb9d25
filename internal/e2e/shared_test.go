package e2e

// Scale-out tests: several `mailarc serve` processes sharing one PostgreSQL
// database (catalog, change feed and full-text index) and one S3 bucket
// (versitygw), as in docs/scale-out.md "Three nodes behind a load balancer".

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mailarc/mailarc/internal/testutil"
	"github.com/mailarc/mailarc/internal/testutil/pgtest"
	"github.com/mailarc/mailarc/internal/testutil/s3test"
)

// pg is the PostgreSQL cluster shared by this package's tests (started on
// first use, stopped by TestMain through pg.Main).
var pg pgtest.Shared

// leadLine is what the indexer logs when it takes the shared index's lead.
const leadLine = "leading indexing for the shared index"

// sharedArchive is one PostgreSQL database plus one bucket prefix: the
// archive several nodes share.
type sharedArchive struct {
	t      *testing.T
	g      *s3test.Gateway
	bucket string
	prefix string
	toml   string // the [catalog] and [store] sections of every node
}

// newSharedArchive creates the database and bucket. It skips (or fails
// under MAILARC_INTEGRATION=1) without PostgreSQL or versitygw.
func newSharedArchive(t *testing.T) *sharedArchive {
	t.Helper()
	dsn := pg.Get(t).CreateDB(t)
	g := s3test.Start(t)
	a := &sharedArchive{t: t, g: g, bucket: g.Bucket(t, false, false), prefix: "arc/"}
	dsnFile := filepath.Join(t.TempDir(), "catalog.dsn")
	if err := os.WriteFile(dsnFile, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a.toml = fmt.Sprintf("[catalog]\nbackend = \"postgres\"\ndsn_file = %q\n", dsnFile) + g.StoreTOML(t, a.bucket, a.prefix)
	return a
}

// node prepares (does not start) a node of the shared archive with its own
// data directory, node name and ports.
func (a *sharedArchive) node(name string) *proc {
	t := a.t
	t.Helper()
	dir := t.TempDir()
	p := &proc{t: t, dir: dir,
		httpAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		smtpAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
	}
	p.config = filepath.Join(dir, "mailarc.toml")
	cfg := fmt.Sprintf("node_name = %q\ndata_dir = %q\n%s\n[http]\nlisten = %q\n[smtp]\nlisten = [%q]\n",
		name, filepath.Join(dir, "data"), a.toml, p.httpAddr, p.smtpAddr)
	if err := os.WriteFile(p.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.kill)
	return p
}

// blobObjects counts the message objects in the bucket (PREFIX/blobs/..).
func (a *sharedArchive) blobObjects() int {
	a.t.Helper()
	prefix := a.prefix + "blobs/"
	pages := s3.NewListObjectsV2Paginator(a.g.Client, &s3.ListObjectsV2Input{Bucket: &a.bucket, Prefix: &prefix})
	n := 0
	for pages.HasMorePages() {
		page, err := pages.NextPage(context.Background())
		if err != nil {
			a.t.Fatalf("list s3://%s/%s: %v", a.bucket, prefix, err)
		}
		n += len(page.Contents)
	}
	return n
}

// sharedMsg is message i of a run: distinct bytes, a unique searchable
// token and the word "sharedbody" in every message.
func sharedMsg(kind string, i int) (raw []byte, token string) {
	token = "tok" + kind + letters(i)
	raw = []byte(fmt.Sprintf("From: sender%d@example.com\r\nTo: archive@example.org\r\n"+
		"Subject: shared %s %d\r\nMessage-ID: <%s.%d@shared.e2e>\r\nDate: Mon, 02 Jan 2023 15:04:05 +0000\r\n\r\n"+
		"Message %d of the %s run carries %s and the word sharedbody.\r\n%s\r\n",
		i%97, kind, i, kind, i, i, kind, token, strings.Repeat("filler text ", 20+i%40)))
	return raw, token
}

// letters spells i with the letters a-j (the index's tokenisers keep a
// run of letters as one term on both engines).
func letters(i int) string {
	s := fmt.Sprint(i)
	b := make([]byte, len(s))
	for k := range s {
		b[k] = 'a' + s[k] - '0'
	}
	return string(b)
}

// ingestResult is one POST answer.
type ingestResult struct {
	code int
	id   string
	dup  bool
	err  error
	body string
}

func post(p *proc, raw []byte) ingestResult {
	code, body, err := p.do("POST", "/api/v1/messages", raw)
	r := ingestResult{code: code, err: err, body: string(body)}
	if err == nil {
		var v struct {
			ID        string
			Duplicate bool
		}
		if json.Unmarshal(body, &v) == nil {
			r.id, r.dup = v.ID, v.Duplicate
		}
	}
	return r
}

// sharedStatus is the part of /api/v1/status these tests read.
type sharedStatus struct {
	Instance string `json:"store_instance"`
	Counts   struct{ Archived, Indexed int64 }
	Index    struct {
		LagMessages int64 `json:"lag_messages"`
	}
}

func getStatus(t *testing.T, p *proc) sharedStatus {
	t.Helper()
	code, body, err := p.do("GET", "/api/v1/status", nil)
	if err != nil || code != 200 {
		t.Fatalf("status of %s: %d %v %s", p.httpAddr, code, err, body)
	}
	var s sharedStatus
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("status: %v\n%s", err, body)
	}
	return s
}

// waitConsistent waits until every node reports want archived messages,
// all indexed, no lag.
func waitConsistent(t *testing.T, want int64, nodes ...*proc) {
	t.Helper()
	for _, p := range nodes {
		var last sharedStatus
		testutil.Eventually(t, 120*time.Second, fmt.Sprintf("%s to report %d archived and indexed", p.httpAddr, want), func() bool {
			last = getStatus(t, p)
			return last.Counts.Archived == want && last.Counts.Indexed == want && last.Index.LagMessages == 0
		})
		// Nothing may be left over either: the counts stay put.
		if s := getStatus(t, p); s.Counts.Archived != want || s.Counts.Indexed != want {
			t.Fatalf("%s: archived %d, indexed %d after settling, want %d", p.httpAddr, s.Counts.Archived, s.Counts.Indexed, want)
		}
	}
}

// checkSearchable asserts that token finds exactly id on p, and that p
// serves the message's exact bytes.
func checkSearchable(t *testing.T, p *proc, token, id string, raw []byte) {
	t.Helper()
	total, hits := search(t, p, token, 5)
	if total != 1 || len(hits) != 1 || hits[0].ID != id {
		t.Fatalf("search %q on %s: total %d, hits %+v; want exactly %s", token, p.httpAddr, total, hits, id)
	}
	code, got, err := p.do("GET", "/api/v1/messages/"+id+"/raw", nil)
	if err != nil || code != 200 || string(got) != string(raw) {
		t.Fatalf("raw %s on %s: %d %v (missing or different)", id, p.httpAddr, code, err)
	}
}

// TestSharedConcurrentIngest: two nodes sharing one PostgreSQL catalog and
// index and one bucket ingest 5,000 distinct messages concurrently (half
// through each) plus 200 messages sent to both at once. Every message is
// stored once (catalog and bucket counts), the racing copies answer
// "stored" on one node and "duplicate" on the other, and every message is
// searchable and readable from both nodes.
func TestSharedConcurrentIngest(t *testing.T) {
	start := time.Now()
	arc := newSharedArchive(t)
	a, b := arc.node("node-a"), arc.node("node-b")
	a.start()
	b.start()
	sa, sb := getStatus(t, a), getStatus(t, b)
	if sa.Instance == "" || sa.Instance != sb.Instance {
		t.Fatalf("store instances differ: node-a %q, node-b %q", sa.Instance, sb.Instance)
	}
	t.Logf("two nodes up in %s", time.Since(start).Round(time.Millisecond))

	const distinct, both, workersPerNode = 5000, 200, 8
	type msg struct {
		raw   []byte
		token string
		via   int // 0: node-a, 1: node-b, 2: both
	}
	msgs := make([]msg, 0, distinct+both)
	for i := range distinct {
		raw, tok := sharedMsg("d", i)
		msgs = append(msgs, msg{raw, tok, i % 2})
	}
	for i := range both {
		raw, tok := sharedMsg("b", i)
		msgs = append(msgs, msg{raw, tok, 2})
	}
	nodes := []*proc{a, b}

	// Queues per node; the messages for both nodes go to a third queue
	// whose workers post each one to node-a and node-b at the same time.
	queues := [3]chan int{make(chan int), make(chan int), make(chan int)}
	var (
		mu       sync.Mutex
		problems []string
		dupPairs [2]int // [0]: node-a answered duplicate, [1]: node-b did
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	var wg sync.WaitGroup
	for q := 0; q < 2; q++ {
		for range workersPerNode {
			wg.Go(func() {
				for i := range queues[q] {
					m := msgs[i]
					r := post(nodes[q], m.raw)
					if r.err != nil || r.code != 201 || r.dup || r.id != sha(m.raw) {
						fail("%s via node %d: %d %v %s (want 201, new, id = sha256)", m.token, q, r.code, r.err, r.body)
					}
				}
			})
		}
	}
	for range 4 {
		wg.Go(func() {
			for i := range queues[2] {
				m := msgs[i]
				var rs [2]ingestResult
				var pair sync.WaitGroup
				for k := range 2 {
					pair.Go(func() { rs[k] = post(nodes[k], m.raw) })
				}
				pair.Wait()
				created, dups := 0, 0
				for k, r := range rs {
					switch {
					case r.err != nil || r.id != sha(m.raw):
						fail("%s to both, node %d: %d %v %s", m.token, k, r.code, r.err, r.body)
					case r.code == 201 && !r.dup:
						created++
					case r.code == 200 && r.dup:
						dups++
						mu.Lock()
						dupPairs[k]++
						mu.Unlock()
					default:
						fail("%s to both, node %d: unexpected answer %d %s", m.token, k, r.code, r.body)
					}
				}
				if created != 1 || dups != 1 {
					fail("%s sent to both nodes at once: %d answered stored, %d duplicate (want 1 and 1): %d %s / %d %s",
						m.token, created, dups, rs[0].code, rs[0].body, rs[1].code, rs[1].body)
				}
			}
		})
	}
	ingestStart := time.Now()
	for _, i := range rand.Perm(len(msgs)) {
		queues[msgs[i].via] <- i
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	ingestTime := time.Since(ingestStart)
	if len(problems) > 0 {
		t.Fatalf("ingest problems (first %d):\n%s", len(problems), strings.Join(problems, "\n"))
	}
	t.Logf("ingested %d distinct + %d to both nodes in %s (%.0f msg/s); duplicates answered by node-a %d, node-b %d",
		distinct, both, ingestTime.Round(time.Millisecond), float64(distinct+both)/ingestTime.Seconds(), dupPairs[0], dupPairs[1])

	// Stored once: the shared catalog and the bucket hold each message once.
	const want = distinct + both
	for _, p := range nodes {
		if s := getStatus(t, p); s.Counts.Archived != want {
			t.Fatalf("%s reports %d archived, want %d", p.httpAddr, s.Counts.Archived, want)
		}
	}
	if n := arc.blobObjects(); n != want {
		t.Fatalf("bucket holds %d blob objects, want %d", n, want)
	}

	// The change feed has no gaps: the one indexer indexed every message.
	waitConsistent(t, want, a, b)
	t.Logf("indexed everything %s after ingest ended", time.Since(ingestStart.Add(ingestTime)).Round(time.Millisecond))
	for _, p := range nodes {
		if total, _ := search(t, p, "", 1); total != want {
			t.Fatalf("search of everything on %s: total %d, want %d", p.httpAddr, total, want)
		}
		if total, _ := search(t, p, "sharedbody", 1); total != want {
			t.Fatalf("search sharedbody on %s: total %d, want %d", p.httpAddr, total, want)
		}
	}

	// Every message is searchable from both nodes: a sample of 300, each
	// searched (and read) on both, the distinct ones notably on the node
	// that did not ingest them.
	for _, i := range rand.Perm(len(msgs))[:300] {
		m := msgs[i]
		for _, p := range nodes {
			checkSearchable(t, p, m.token, sha(m.raw), m.raw)
		}
	}
	leaders := 0
	for _, p := range nodes {
		if strings.Contains(p.log.String(), leadLine) {
			leaders++
		}
	}
	if leaders != 1 {
		t.Errorf("%d nodes logged %q, want exactly 1", leaders, leadLine)
	}

	// mailarc verify on a stopped node checks every catalog entry against
	// the bucket and finds no stray object.
	a.stop()
	b.stop()
	out, code := cli(t, nil, "verify", "--config", a.config)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("verified %d blobs and %d catalog messages: 0 problems, 0 unreferenced blobs", want, want)) {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
	t.Logf("total %s", time.Since(start).Round(time.Millisecond))
}

// indexLeader waits until exactly one of nodes has logged that it leads
// indexing and returns it.
func indexLeader(t *testing.T, nodes ...*proc) *proc {
	t.Helper()
	var leader *proc
	testutil.Eventually(t, 60*time.Second, "one node to lead indexing", func() bool {
		leader = nil
		n := 0
		for _, p := range nodes {
			if strings.Contains(p.log.String(), leadLine) {
				leader = p
				n++
			}
		}
		if n > 1 {
			t.Fatalf("%d nodes lead indexing at once", n)
		}
		return n == 1
	})
	return leader
}

// ingestSome posts msgs to p with a few workers and fails on any answer
// other than 201.
func ingestSome(t *testing.T, p *proc, msgs [][]byte) {
	t.Helper()
	if err := ingestAll(p, msgs); err != nil {
		t.Fatal(err)
	}
}

// ingestAll posts msgs to p with four workers and reports the answers
// other than 201 (safe to call from any goroutine).
func ingestAll(p *proc, msgs [][]byte) error {
	ch := make(chan []byte)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	for range 4 {
		wg.Go(func() {
			for raw := range ch {
				if r := post(p, raw); r.err != nil || r.code != 201 || r.dup || r.id != sha(raw) {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("%d %v %s", r.code, r.err, r.body))
					mu.Unlock()
				}
			}
		})
	}
	for _, raw := range msgs {
		ch <- raw
	}
	close(ch)
	wg.Wait()
	if len(bad) > 0 {
		return fmt.Errorf("%d of %d posts to %s failed, first: %s", len(bad), len(msgs), p.httpAddr, bad[0])
	}
	return nil
}

// TestSharedIndexLeadFailover: of two nodes sharing an index exactly one
// indexes (the other's document counter stays 0). The leader is killed
// with -9 in the middle of an ingest burst (holding the feed lock, or
// indexing, or both); its lead passes to the survivor, which indexes the
// backlog and everything ingested afterwards, and every acknowledged
// message is there. The restarted node finds a consistent archive and does
// not index while the survivor leads.
func TestSharedIndexLeadFailover(t *testing.T) {
	start := time.Now()
	arc := newSharedArchive(t)
	a, b := arc.node("node-a"), arc.node("node-b")
	a.start()
	b.start()
	leader := indexLeader(t, a, b)
	other := a
	if leader == a {
		other = b
	}
	t.Logf("%s leads indexing", leader.httpAddr)

	type item struct {
		raw   []byte
		token string
	}
	var acked []item // every message acknowledged so far
	batch := func(kind string, n int) [][]byte {
		var out [][]byte
		for i := range n {
			raw, tok := sharedMsg(kind, i)
			acked = append(acked, item{raw, tok})
			out = append(out, raw)
		}
		return out
	}

	// Phase 1: ingest on both; only the leader indexes.
	b1, b2 := batch("p", 300), batch("q", 300)
	var otherErr error
	done := make(chan struct{})
	go func() { defer close(done); otherErr = ingestAll(other, b2) }()
	ingestSome(t, leader, b1)
	<-done
	if otherErr != nil {
		t.Fatal(otherErr)
	}
	waitConsistent(t, int64(len(acked)), a, b)
	if n := metric(t, other, "mailarc_index_documents_total"); n != 0 {
		t.Fatalf("the non-leading node indexed %v documents: double indexing", n)
	}
	if n := metric(t, leader, "mailarc_index_documents_total"); n < float64(len(acked)) {
		t.Fatalf("the leader indexed %v documents, want at least %d", n, len(acked))
	}

	// Phase 2: kill -9 the leader in the middle of a burst of posts to it.
	const burstWorkers = 4
	burst := make(chan item)
	var (
		mu         sync.Mutex
		burstAcked []item
		wg         sync.WaitGroup
	)
	for range burstWorkers {
		wg.Go(func() {
			for m := range burst {
				r := post(leader, m.raw)
				if r.err != nil {
					return // the leader died under us
				}
				if r.code == 201 && r.id == sha(m.raw) {
					mu.Lock()
					burstAcked = append(burstAcked, m)
					mu.Unlock()
				}
			}
		})
	}
	stopFeed, fed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(fed)
		for i := 0; ; i++ {
			raw, tok := sharedMsg("r", i)
			select {
			case burst <- item{raw, tok}:
			case <-stopFeed:
				return
			}
		}
	}()
	testutil.Eventually(t, 60*time.Second, "a burst of acknowledged posts to the leader", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(burstAcked) >= 400
	})
	if strings.Contains(other.log.String(), leadLine) {
		t.Fatalf("%s logged %q while the leader was alive", other.httpAddr, leadLine)
	}
	lag := getStatus(t, leader).Index.LagMessages
	leader.kill()
	wg.Wait()
	close(stopFeed)
	<-fed
	acked = append(acked, burstAcked...)
	t.Logf("killed the leader after %d acknowledged posts of the burst, %d messages not yet indexed", len(burstAcked), lag)
	ingestSome(t, other, batch("s", 300))
	testutil.Eventually(t, 60*time.Second, "the survivor to take the indexing lead", func() bool {
		return strings.Contains(other.log.String(), leadLine)
	})
	failover := time.Now()
	// A post the kill cut off may still have been committed: the archive
	// holds every acknowledged message and at most burstWorkers more.
	archived := getStatus(t, other).Counts.Archived
	if archived < int64(len(acked)) || archived > int64(len(acked)+burstWorkers) {
		t.Fatalf("survivor reports %d archived; %d were acknowledged, at most %d more were in flight", archived, len(acked), burstWorkers)
	}
	t.Logf("survivor: %d archived, %d acknowledged", archived, len(acked))
	waitConsistent(t, archived, other)
	t.Logf("survivor indexed the backlog %s after taking the lead", time.Since(failover).Round(time.Millisecond))
	for _, i := range rand.Perm(len(acked))[:200] {
		checkSearchable(t, other, acked[i].token, sha(acked[i].raw), acked[i].raw)
	}
	for _, m := range burstAcked { // above all, what the leader acknowledged as it died
		checkSearchable(t, other, m.token, sha(m.raw), m.raw)
	}

	// Phase 3: the killed node restarts into a consistent archive and
	// stays a follower: what it ingests is indexed by the survivor.
	leader.start()
	ingestSome(t, leader, batch("t", 200))
	archived += 200
	waitConsistent(t, archived, leader, other)
	if strings.Contains(leader.log.String(), leadLine) {
		t.Fatalf("the restarted node took the lead while the survivor held it:\n%s", leader.log.String())
	}
	if n := metric(t, leader, "mailarc_index_documents_total"); n != 0 {
		t.Fatalf("the restarted node indexed %v documents while the survivor leads", n)
	}
	for _, p := range []*proc{leader, other} {
		if total, _ := search(t, p, "", 1); int64(total) != archived {
			t.Fatalf("search of everything on %s: total %d, want %d", p.httpAddr, total, archived)
		}
	}
	for _, i := range rand.Perm(len(acked))[:100] {
		checkSearchable(t, leader, acked[i].token, sha(acked[i].raw), acked[i].raw)
	}
	// A blob written before the kill cut off its catalog commit stays as
	// an unreferenced object (mailarc verify lists it); nothing else.
	n := arc.blobObjects()
	if int64(n) < archived || int64(n) > archived+burstWorkers {
		t.Fatalf("bucket holds %d blob objects for %d archived messages (at most %d orphans from the kill)", n, archived, burstWorkers)
	}
	t.Logf("bucket: %d blob objects, %d archived messages", n, archived)

	// mailarc verify from one (stopped) node while the other keeps serving
	// the shared archive: no problem, the orphans named as such.
	leader.stop()
	out, code := cli(t, nil, "verify", "--config", leader.config)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("verified %d blobs and %d catalog messages: 0 problems, %d unreferenced blobs", n, archived, int64(n)-archived)) {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
	t.Logf("total %s", time.Since(start).Round(time.Millisecond))
}

// startTogether starts the nodes' processes at the same moment (so their
// migrations and the bucket's initialisation race) and waits until each is
// ready.
func startTogether(t *testing.T, nodes ...*proc) {
	t.Helper()
	for _, p := range nodes {
		p.log = &testutil.SyncBuffer{}
		p.cmd = exec.Command(binary, "serve", "--config", p.config)
		p.cmd.Env = append(os.Environ(), "MAILARC_ADMIN_PASSWORD="+adminPass)
		p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	}
	for _, p := range nodes {
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p.exited = make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(p.exited) }()
	}
	for _, p := range nodes {
		testutil.Eventually(t, 60*time.Second, p.httpAddr+" to become ready", func() bool {
			select {
			case <-p.exited:
				t.Fatalf("mailarc exited: %s", p.log.String())
			default:
			}
			resp, err := http.Get(p.url("/readyz"))
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		})
	}
}

// TestSharedSMTP: three nodes take SMTP from concurrent clients each, plus
// messages delivered to all three with different envelope recipients (as
// MX hosts behind one balancer see a retried delivery): each message is
// stored once, the envelopes recorded by the nodes merge in the shared
// catalog, and the merged envelope is searchable from every node (a
// metadata change fed through the shared change feed).
func TestSharedSMTP(t *testing.T) {
	start := time.Now()
	arc := newSharedArchive(t)
	nodes := []*proc{arc.node("node-a"), arc.node("node-b"), arc.node("node-c")}
	// node-a first: nodes started together on an empty archive race on
	// the bootstrap admin (TestSharedStartTogetherBootstrap).
	nodes[0].start()
	startTogether(t, nodes[1:]...)
	inst := getStatus(t, nodes[0]).Instance
	for _, p := range nodes {
		if s := getStatus(t, p); s.Instance == "" || s.Instance != inst {
			t.Fatalf("%s: store instance %q, node-a has %q", p.httpAddr, s.Instance, inst)
		}
	}
	t.Logf("three nodes up in %s", time.Since(start).Round(time.Millisecond))

	const clients, perClient, dual = 4, 100, 50
	loads := make([]*loadResult, len(nodes))
	var wg sync.WaitGroup
	for k, p := range nodes {
		loads[k] = newLoad()
		wg.Go(func() { loads[k].run(p.smtpAddr, fmt.Sprintf("shared-%d", k), clients, perClient, nil) })
	}
	type dualMsg struct {
		raw  []byte
		ids  [3]string
		errs [3]error
	}
	rcpt := func(i, k int) string { return fmt.Sprintf("dual%d.via%c@archive.example", i, 'a'+k) }
	duals := make([]dualMsg, dual)
	for i := range duals {
		duals[i].raw, _ = sharedMsg("smtp", i)
	}
	for k, p := range nodes {
		wg.Go(func() {
			c, err := dialSMTP(p.smtpAddr)
			if err != nil {
				for i := range duals {
					duals[i].errs[k] = err
				}
				return
			}
			defer c.Close()
			for i := range duals {
				duals[i].ids[k], duals[i].errs[k] = sendOn(c, "mx@sender.example", []string{rcpt(i, k)}, duals[i].raw)
			}
			_ = c.Quit()
		})
	}
	wg.Wait()
	for _, res := range loads {
		if len(res.errs) > 0 {
			t.Fatalf("%d SMTP client errors, first: %v", len(res.errs), res.errs[0])
		}
		if len(res.acked) != clients*perClient {
			t.Fatalf("%d distinct ids acknowledged, want %d", len(res.acked), clients*perClient)
		}
	}
	for i, d := range duals {
		for k := range nodes {
			if d.errs[k] != nil || d.ids[k] != sha(d.raw) {
				t.Fatalf("dual message %d via node %d: id %q, err %v", i, k, d.ids[k], d.errs[k])
			}
		}
	}
	t.Logf("SMTP: %d messages per node and %d to every node in %s", clients*perClient, dual, time.Since(start).Round(time.Millisecond))

	want := int64(len(nodes)*clients*perClient + dual)
	waitConsistent(t, want, nodes...)
	if n := arc.blobObjects(); int64(n) != want {
		t.Fatalf("bucket holds %d blob objects, want %d", n, want)
	}
	leaders := 0
	for _, p := range nodes {
		if strings.Contains(p.log.String(), leadLine) {
			leaders++
		}
	}
	if leaders != 1 {
		t.Fatalf("%d nodes logged %q, want exactly 1", leaders, leadLine)
	}
	// What one node acknowledged, the next one serves byte for byte.
	for k, res := range loads {
		checkArchived(t, nodes[(k+1)%len(nodes)], res.acked)
	}
	for i, d := range duals {
		id := sha(d.raw)
		for _, p := range nodes {
			m := getMessage(t, p, id)
			for k := range nodes {
				if !contains(m.Envelope.RcptTo, rcpt(i, k)) {
					t.Fatalf("dual message %d on %s: envelope recipients %v lack %s", i, p.httpAddr, m.Envelope.RcptTo, rcpt(i, k))
				}
			}
		}
		// The merged envelope reaches the shared index (the metadata
		// changes are in the feed): each recipient finds it on each node.
		if i%5 == 0 {
			for _, p := range nodes {
				for k := range nodes {
					waitSearch(t, p, "bcc:"+rcpt(i, k), id)
				}
			}
		}
	}
	t.Logf("total %s", time.Since(start).Round(time.Millisecond))
}

// webLogin signs in on p through the login form and returns the session
// cookie.
func webLogin(t *testing.T, p *proc, user, pass string) *http.Cookie {
	t.Helper()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(p.url("/login"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var csrf string
	for _, ck := range resp.Cookies() {
		if ck.Name == "mailarc_login_csrf" {
			csrf = ck.Value
		}
	}
	form := url.Values{"username": {user}, "password": {pass}, "csrf": {csrf}}
	req, _ := http.NewRequest("POST", p.url("/login"), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "mailarc_login_csrf", Value: csrf})
	resp, err = noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == "mailarc_session" {
			return ck
		}
	}
	t.Fatalf("login on %s: %d, no session cookie", p.httpAddr, resp.StatusCode)
	return nil
}

// TestSharedStartTogetherBootstrap: three nodes started at the same moment
// on a new database and bucket (a fresh deployment behind a load
// balancer) all come up as one archive: migrations, the bucket's
// store.json and the bootstrap admin are created once, and no node gives
// up because another created them first. Repeated, since the failures
// are races.
func TestSharedStartTogetherBootstrap(t *testing.T) {
	for round := range 3 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			arc := newSharedArchive(t)
			nodes := []*proc{arc.node("node-a"), arc.node("node-b"), arc.node("node-c")}
			startTogether(t, nodes...)
			inst := getStatus(t, nodes[0]).Instance
			for _, p := range nodes {
				if s := getStatus(t, p); s.Instance == "" || s.Instance != inst {
					t.Fatalf("%s: store instance %q, node-a has %q", p.httpAddr, s.Instance, inst)
				}
			}
		})
	}
}

// createAdmin adds the admin user through the CLI of node p (stopped), so
// that nodes started afterwards find it.
func createAdmin(t *testing.T, p *proc) {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "admin-password")
	if err := os.WriteFile(pw, []byte(adminPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := cli(t, nil, "user", "add", "--config", p.config, "--role", "admin", "--password-file", pw, "admin"); code != 0 {
		t.Fatalf("user add: exit %d\n%s", code, out)
	}
}

// TestSharedStartTogetherSessions: with nodes started at the same moment,
// a browser session opened on any node is valid on every node, so a load
// balancer needs no sticky sessions. (The admin is created beforehand so
// that this test does not depend on the bootstrap race above.)
func TestSharedStartTogetherSessions(t *testing.T) {
	for round := range 6 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			arc := newSharedArchive(t)
			nodes := []*proc{arc.node("node-a"), arc.node("node-b"), arc.node("node-c")}
			createAdmin(t, nodes[0])
			startTogether(t, nodes...)
			for _, from := range nodes {
				session := webLogin(t, from, "admin", adminPass)
				for _, p := range nodes {
					req, _ := http.NewRequest("GET", p.url("/api/v1/status"), nil)
					req.AddCookie(session)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					if resp.StatusCode != 200 {
						t.Errorf("session from %s on %s: HTTP %d", from.httpAddr, p.httpAddr, resp.StatusCode)
					}
				}
			}
		})
	}
}
