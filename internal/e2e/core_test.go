package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/testutil"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestKill9DuringIngest: every message whose POST was answered 200/201
// before a kill -9 is present and intact after restart.
func TestKill9DuringIngest(t *testing.T) {
	dir := t.TempDir()
	p := newProc(t, dir, "")
	p.start()

	var mu sync.Mutex
	acked := map[string][]byte{}
	var sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := 0; c < 16; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				raw := []byte(fmt.Sprintf("From: c%d@example.com\r\nSubject: kill test %d/%d\r\nMessage-ID: <%d.%d@e2e>\r\n\r\n%s\r\n",
					c, c, i, c, i, strings.Repeat("payload ", 200+i%500)))
				code, body, err := p.do("POST", "/api/v1/messages", raw)
				if err != nil {
					return // the server died under us
				}
				if code == 201 || code == 200 {
					var r struct{ ID string }
					if json.Unmarshal(body, &r) == nil {
						mu.Lock()
						acked[r.ID] = raw
						mu.Unlock()
					}
				}
				sent.Add(1)
			}
		}()
	}
	testutil.Eventually(t, 60*time.Second, "some messages to be acknowledged", func() bool { return sent.Load() > 500 })
	p.kill()
	close(stop)
	wg.Wait()
	t.Logf("%d messages acknowledged before kill -9", len(acked))

	p.start()
	for id, raw := range acked {
		if sha(raw) != id {
			t.Fatalf("ack id %s is not the sha256 of the sent bytes", id)
		}
		code, got, err := p.do("GET", "/api/v1/messages/"+id+"/raw", nil)
		if err != nil || code != 200 || string(got) != string(raw) {
			t.Fatalf("acknowledged message %s: %d %v (lost or damaged after kill -9)", id, code, err)
		}
	}
	p.stop()
	out, code := cli(t, nil, "verify", "--config", p.config)
	if code != 0 || !strings.Contains(out, " 0 problems,") {
		t.Fatalf("verify after kill -9: exit %d\n%s", code, out)
	}
}

// TestVerifyFindsFlippedByte: damage inside one record is reported, naming
// exactly that message.
func TestVerifyFindsFlippedByte(t *testing.T) {
	dir := t.TempDir()
	p := newProc(t, dir, "")
	mails := filepath.Join(dir, "mails")
	if err := os.MkdirAll(mails, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		msg := fmt.Sprintf("Subject: flip %d\n\n%s\n", i, strings.Repeat(fmt.Sprintf("line %d ", i), 300))
		if err := os.WriteFile(filepath.Join(mails, fmt.Sprintf("%d.eml", i)), []byte(msg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, code := cli(t, nil, "import", "--config", p.config, filepath.Join(mails, "0.eml"), filepath.Join(mails, "1.eml"), filepath.Join(mails, "2.eml"), filepath.Join(mails, "3.eml"))
	if code != 0 || !strings.Contains(out, "imported 4, duplicates 0, failed 0") {
		t.Fatalf("import: %d %s", code, out)
	}
	// The last message imported is the last record of the pack.
	out, code = cli(t, nil, "import", "--config", p.config, filepath.Join(mails, "4.eml"))
	if code != 0 {
		t.Fatalf("import: %s", out)
	}
	last, _ := os.ReadFile(filepath.Join(mails, "4.eml"))
	victim := sha([]byte(strings.ReplaceAll(string(last), "\n", "\r\n")))
	packs, _ := filepath.Glob(filepath.Join(dir, "data", "store", "packs", "*.pack"))
	if len(packs) != 1 {
		t.Fatalf("packs: %v", packs)
	}
	b, err := os.ReadFile(packs[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-20] ^= 0x01
	if err := os.WriteFile(packs[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, code = cli(t, nil, "verify", "--config", p.config)
	bad := []string{}
	for _, l := range lines(out) {
		if strings.HasPrefix(l, "BAD ") {
			bad = append(bad, strings.TrimSuffix(strings.Fields(l)[1], ":"))
		}
	}
	if code == 0 || len(bad) != 1 || bad[0] != victim {
		t.Fatalf("verify after flipping a byte of %s: exit %d, bad %v\n%s", victim, code, bad, out)
	}
}

func TestImportAndCLI(t *testing.T) {
	dir := t.TempDir()
	p := newProc(t, dir, "")
	mails := filepath.Join(dir, "mails")
	if err := os.MkdirAll(filepath.Join(mails, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	mbox := "From a@b Mon Jan  1 00:00:00 2024\nSubject: one\n\nbody one\n>From quoted\n\nFrom a@b Mon Jan  1 00:00:00 2024\nSubject: two\n\nbody two\n"
	files := map[string]string{
		"a.eml":      "Subject: alpha kumquat\n\nhello\n",
		"sub/b.eml":  "Subject: beta\n\nworld\n",
		"box.mbox":   mbox,
		"empty.eml":  "",
		"sub/a2.eml": "Subject: alpha kumquat\n\nhello\n", // duplicate of a.eml
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(mails, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, code := cli(t, nil, "import", "--config", p.config, mails)
	if code == 0 || !strings.Contains(out, "imported 4, duplicates 1, failed 1") || !strings.Contains(out, "empty.eml") {
		t.Fatalf("import summary: exit %d\n%s", code, out)
	}
	out, code = cli(t, nil, "search", "--config", p.config, "kumquat")
	if code != 0 || !strings.Contains(out, "alpha kumquat") || !strings.Contains(out, "1 of 1") {
		t.Fatalf("search: %d %s", code, out)
	}
	// mboxrd unquoting: ">From quoted" comes back as "From quoted".
	id := sha([]byte("Subject: one\r\n\r\nbody one\r\nFrom quoted\r\n"))
	out, code = cli(t, nil, "get", "--config", p.config, id)
	if code != 0 || out != "Subject: one\r\n\r\nbody one\r\nFrom quoted\r\n" {
		t.Fatalf("get %s: %d %q", id, code, out)
	}

	p.start()
	out, code = cli(t, nil, "import", "--config", p.config, mails)
	if code == 0 || !strings.Contains(out, "in use") || !strings.Contains(out, "--server") {
		t.Fatalf("import on a held data dir: %d %s", code, out)
	}
	out, code = cli(t, nil, "import", "--server", "http://"+p.httpAddr, filepath.Join(mails, "sub"))
	if code != 0 || !strings.Contains(out, "imported 0, duplicates 2, failed 0") {
		t.Fatalf("import --server: %d %s", code, out)
	}
	testutil.Eventually(t, 30*time.Second, "indexing", func() bool {
		out, _ := cli(t, nil, "search", "--server", "http://"+p.httpAddr, "--json", "beta")
		return strings.Contains(out, `"total": 1`)
	})
	out, code = cli(t, nil, "get", "--server", "http://"+p.httpAddr, sha([]byte("Subject: beta\r\n\r\nworld\r\n")))
	if code != 0 || out != "Subject: beta\r\n\r\nworld\r\n" {
		t.Fatalf("get --server: %d %q", code, out)
	}
	out, code = cli(t, nil, "status", "--server", "http://"+p.httpAddr)
	if code != 0 || !strings.Contains(out, `"archived": 4`) {
		t.Fatalf("status: %d %s", code, out)
	}
	p.stop()
	if !strings.Contains(p.log.String(), "stopped cleanly") {
		t.Errorf("no clean stop logged:\n%s", p.log.String())
	}
	out, code = cli(t, nil, "version")
	if code != 0 || strings.TrimSpace(out) == "" {
		t.Fatalf("version: %d %q", code, out)
	}
	var ids []string
	out, _ = cli(t, nil, "search", "--config", p.config, "--json", "")
	var res struct{ Messages []struct{ ID string } }
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("search --json: %v\n%s", err, out)
	}
	for _, m := range res.Messages {
		ids = append(ids, m.ID)
	}
	sort.Strings(ids)
	if len(ids) != 4 {
		t.Errorf("empty query lists %d messages, want all 4", len(ids))
	}
	// The index is derived data: delete it, reindex, search again.
	if err := os.Remove(filepath.Join(dir, "data", "index.db")); err != nil {
		t.Fatal(err)
	}
	out, code = cli(t, nil, "reindex", "--config", p.config)
	if code != 0 || !strings.Contains(out, "reindexed 4 messages") {
		t.Fatalf("reindex: %d %s", code, out)
	}
	out, code = cli(t, nil, "search", "--config", p.config, "subject:beta")
	if code != 0 || !strings.Contains(out, "1 of 1") {
		t.Fatalf("search after reindex: %d %s", code, out)
	}
	out, code = cli(t, nil, "search", "--config", p.config, "subject:(unclosed")
	if code == 0 || !strings.Contains(out, "position") {
		t.Fatalf("bad query: %d %s", code, out)
	}
}

// TestIndexerSurvivesKill9: the indexer killed mid-backlog resumes from its
// watermark: afterwards every archived message is indexed exactly once.
func TestIndexerSurvivesKill9(t *testing.T) {
	corpus := testutil.Corpus(t)
	dir := t.TempDir()
	p := newProc(t, dir, "[index]\nbatch_size = 50\n")
	out, code := cli(t, nil, "import", "--config", p.config, filepath.Join(corpus, "real", "usrp", "000"))
	if code != 0 {
		t.Fatalf("import: %s", out)
	}
	status := func() (archived, indexed, lag int64) {
		_, b, err := p.do("GET", "/api/v1/status", nil)
		if err != nil {
			return -1, -1, -1
		}
		var st struct {
			Counts struct{ Archived, Indexed int64 }
			Index  struct {
				LagMessages int64 `json:"lag_messages"`
			}
		}
		_ = json.Unmarshal(b, &st)
		return st.Counts.Archived, st.Counts.Indexed, st.Index.LagMessages
	}
	p.start()
	testutil.Eventually(t, 120*time.Second, "indexing to start", func() bool { _, n, _ := status(); return n > 0 })
	p.kill()
	p.start()
	testutil.Eventually(t, 300*time.Second, "the index to catch up", func() bool { _, _, lag := status(); return lag == 0 })
	archived, indexed, _ := status()
	if archived < 900 || indexed != archived {
		t.Fatalf("archived %d, indexed %d after kill -9 and resume", archived, indexed)
	}
	_, b, err := p.do("GET", "/api/v1/search?count=exact&q=&limit=1", nil)
	if err != nil || !strings.Contains(string(b), fmt.Sprintf(`"total":%d`, archived)) {
		t.Fatalf("search of everything: %v %s, want total %d", err, b, archived)
	}
}
