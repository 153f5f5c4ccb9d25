package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/testutil"
	"github.com/mailarc/mailarc/internal/version"
)

// quickStartBlock returns the logical command lines of the first ```sh
// block under "## Quick start" in README.md: continuation lines joined,
// full-line comments kept (they start with "#") so a sample output line can
// be checked against the command before it.
func quickStartBlock(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "\n## Quick start\n")
	if !ok {
		t.Fatal(`README.md has no "## Quick start" section`)
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	if !ok {
		t.Fatal("README.md's quick start has no ```sh block")
	}
	block, _, ok := strings.Cut(rest, "\n```")
	if !ok {
		t.Fatal("README.md's quick start block is not closed")
	}
	var out []string
	var cur string
	for _, l := range strings.Split(block, "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		if c, ok := strings.CutSuffix(l, "\\"); ok {
			cur += c
			continue
		}
		out = append(out, strings.TrimSpace(cur+l))
		cur = ""
	}
	return out
}

// trailingComment matches a shell comment after a command.
var trailingComment = regexp.MustCompile(`\s+#\s.*$`)

// TestReadmeQuickStart runs README.md's "Quick start" block as written, one
// command at a time as a newcomer types them, in a fresh directory with
// HOME holding ~/Mail. The only substitutions: `make build` is the same go
// build into ./bin (with a version set by -ldflags, checked exactly), the
// node listens on free ports (MAILARC_HTTP_LISTEN and MAILARC_SMTP_LISTEN in
// the environment, the addresses in the commands rewritten to match), and
// <ID> is the id of the message the search finds. A command this test does
// not know fails it: change the README and this test together.
func TestReadmeQuickStart(t *testing.T) {
	swaks, swaksErr := exec.LookPath("swaks")
	testutil.Require(t, swaksErr == nil, "swaks not installed (apt-get install swaks)")
	work := t.TempDir()
	home := filepath.Join(work, "home")
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	want := writeQuickStartMail(t, filepath.Join(home, "Mail"))

	// The environment of a fresh shell: none of the test runner's MAILARC_*.
	env := []string{"HOME=" + home, "MAILARC_HTTP_LISTEN=" + httpAddr, "MAILARC_SMTP_LISTEN=" + smtpAddr}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MAILARC_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv)
		}
	}
	var exports []string // the block's export lines so far, replayed before each command
	shell := func(cmd string) *exec.Cmd {
		c := exec.Command("bash", "-c", "set -e\n"+strings.Join(exports, "\n")+"\n"+cmd)
		c.Dir, c.Env = work, env
		return c
	}
	run := func(cmd string) (string, error) {
		out, err := shell(cmd).CombinedOutput()
		return string(out), err
	}
	// readmeAdminPass is $MAILARC_ADMIN_PASSWORD as the block's exports set it.
	readmeAdminPass := func() string {
		out, err := run(`printf %s "$MAILARC_ADMIN_PASSWORD"`)
		if err != nil || out == "" {
			t.Fatalf("MAILARC_ADMIN_PASSWORD after the quick start's exports: %q %v", out, err)
		}
		return out
	}
	subst := strings.NewReplacer("127.0.0.1:8080", httpAddr, "127.0.0.1:2525", smtpAddr, "<ID>", want.id)
	const buildVersion = "0.0.0-quickstart+e2e"

	var serve *exec.Cmd
	serveLog := &testutil.SyncBuffer{}
	serveExited := make(chan struct{})
	t.Cleanup(func() {
		if serve != nil && serve.Process != nil {
			_ = serve.Process.Signal(syscall.SIGKILL)
			<-serveExited
		}
	})
	var last, lastOut string // the previous command and its output
	ran := map[string]bool{}
	for _, line := range quickStartBlock(t) {
		if strings.HasPrefix(line, "#") {
			// "#   imported 12034, ..." under a command is its sample output:
			// the real output has that shape, numbers aside.
			if sample := strings.TrimSpace(strings.TrimPrefix(line, "#")); strings.HasPrefix(line, "#   ") {
				re := regexp.MustCompile(regexp.MustCompile(`\d+`).ReplaceAllString(regexp.QuoteMeta(sample), `\d+`))
				if !re.MatchString(lastOut) {
					t.Errorf("README shows %q as the output of %q; it printed:\n%s", sample, last, lastOut)
				}
			}
			continue
		}
		cmd := strings.TrimSpace(trailingComment.ReplaceAllString(line, ""))
		t.Logf("$ %s", cmd)
		last, lastOut = cmd, ""
		switch {
		case cmd == "make build":
			// The Makefile's build target, with its flags, into ./bin.
			out, err := exec.Command("go", "build", "-tags", "sqlite_fts5",
				"-ldflags", "-X github.com/mailarc/mailarc/internal/version.Version="+buildVersion,
				"-o", filepath.Join(work, "bin", "mailarc"), "github.com/mailarc/mailarc/cmd/mailarc").CombinedOutput()
			if err != nil {
				t.Fatalf("make build (go build): %v\n%s", err, out)
			}
			if out, err := run("bin/mailarc version"); err != nil || out != buildVersion+"\n" {
				t.Fatalf("bin/mailarc version printed %q (%v), want exactly the -ldflags value %q", out, err, buildVersion)
			}
			ran["build"] = true

		case strings.HasPrefix(cmd, "export "):
			if out, err := run(cmd); err != nil {
				t.Fatalf("%s: %v\n%s", cmd, err, out)
			}
			exports = append(exports, cmd)

		case strings.HasPrefix(cmd, "bin/mailarc serve") && strings.HasSuffix(cmd, "&"):
			// Started in the background; the next command follows at once,
			// as in a script (import retries until the node listens).
			serve = shell("exec " + strings.TrimSpace(strings.TrimSuffix(subst.Replace(cmd), "&")))
			serve.Stdout, serve.Stderr = serveLog, serveLog
			if err := serve.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { _ = serve.Wait(); close(serveExited) }()
			ran["serve"] = true

		case strings.HasPrefix(cmd, "bin/mailarc import --server"):
			out, err := run(subst.Replace(cmd))
			if err != nil || !strings.Contains(out, fmt.Sprintf("imported %d, duplicates 0, failed 0", want.count)) {
				t.Fatalf("%s: %v\n%s\nserve log:\n%s", cmd, err, out, serveLog.String())
			}
			lastOut = out
			ran["import"] = true

		case strings.HasPrefix(cmd, "bin/mailarc search --server"):
			// Indexing follows archiving: run it again until the index caught up.
			var out string
			testutil.Eventually(t, 60*time.Second, "the search to find the invoice", func() bool {
				var err error
				out, err = run(subst.Replace(cmd))
				return err == nil && strings.Contains(out, want.id) && strings.Contains(out, "1 of 1 ")
			})
			if !strings.Contains(out, want.subject) {
				t.Errorf("search output lacks the subject %q:\n%s", want.subject, out)
			}
			lastOut = out
			ran["search"] = true

		case strings.HasPrefix(cmd, "bin/mailarc get --server") && strings.Contains(cmd, "<ID>"):
			if !ran["search"] {
				t.Fatal("the README fetches <ID> before searching for it")
			}
			m := regexp.MustCompile(`>\s*(\S+)$`).FindStringSubmatch(cmd)
			if m == nil {
				t.Fatalf("%s: expected the output redirected to a file", cmd)
			}
			if out, err := run(subst.Replace(cmd)); err != nil {
				t.Fatalf("%s: %v\n%s", cmd, err, out)
			}
			got, err := os.ReadFile(filepath.Join(work, m[1]))
			if err != nil || !bytes.Equal(got, want.raw) || sha(got) != want.id {
				t.Fatalf("%s wrote %d bytes (%v), want the %d stored bytes of %s", m[1], len(got), err, len(want.raw), want.id)
			}
			ran["get"] = true

		case strings.HasPrefix(cmd, "swaks "):
			before := quickStartStatus(t, httpAddr, readmeAdminPass()).Counts.Archived
			if out, err := run(strings.Replace(subst.Replace(cmd), "swaks", swaks, 1)); err != nil {
				t.Fatalf("%s: %v\n%s", cmd, err, out)
			}
			if after := quickStartStatus(t, httpAddr, readmeAdminPass()).Counts.Archived; after != before+1 {
				t.Fatalf("after swaks the node holds %d messages, want %d", after, before+1)
			}
			ran["swaks"] = true

		default:
			t.Fatalf("README.md's quick start has a command this test does not run: %q (teach TestReadmeQuickStart)", cmd)
		}
	}
	for _, step := range []string{"build", "serve", "import", "search", "get", "swaks"} {
		if !ran[step] {
			t.Errorf("the quick start no longer has its %s step (or this test no longer recognises it)", step)
		}
	}
	if t.Failed() || serve == nil {
		return
	}

	// The node reports the version it was built with.
	if v := quickStartStatus(t, httpAddr, readmeAdminPass()).Version; v != buildVersion {
		t.Errorf("/api/v1/status version %q, want %q", v, buildVersion)
	}
	_ = serve.Process.Signal(syscall.SIGTERM)
	select {
	case <-serveExited:
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not stop on SIGTERM:\n%s", serveLog.String())
	}
	if code := serve.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, serveLog.String())
	}
	serve = nil
	if _, err := os.Stat(filepath.Join(work, "mailarc-data")); err != nil {
		t.Errorf("serve kept no ./mailarc-data: %v", err)
	}
}

// quickStartMessage is the message the quick start's search should find.
type quickStartMessage struct {
	raw         []byte
	id, subject string
	count       int // messages in ~/Mail
}

// writeQuickStartMail fills dir (~/Mail) with a few messages in every
// format import reads; exactly one of them matches the README's search
// 'from:alice invoice has:attachment after:2024-01-01'.
func writeQuickStartMail(t *testing.T, dir string) quickStartMessage {
	t.Helper()
	match := "From: Alice Example <alice@corp.example>\nTo: bob@corp.example\nSubject: March invoice\n" +
		"Date: Tue, 5 Mar 2024 09:30:00 +0000\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b1\n\n" +
		"--b1\nContent-Type: text/plain\n\nThe invoice for March is attached.\n" +
		"--b1\nContent-Type: text/csv; name=invoice.csv\nContent-Disposition: attachment; filename=invoice.csv\n\nitem,amount\nwidgets,120\n--b1--\n"
	files := map[string]string{
		"invoice.eml": match,
		// An older invoice from Alice (before 2024) and one without an attachment.
		"old/2023-invoice.eml": strings.Replace(strings.Replace(match, "2024", "2023", 1), "March invoice", "March invoice 2023", 1),
		"no-attachment.eml":    "From: alice@corp.example\nSubject: invoice question\nDate: Wed, 6 Mar 2024 10:00:00 +0000\n\nWhich invoice?\n",
		// A maildir and an mbox.
		"Inbox/cur/1709800000.1.host:2,S": "From: carol@corp.example\nSubject: lunch\nDate: Thu, 7 Mar 2024 12:00:00 +0000\n\nNoon?\n",
		"Inbox/new/1709800001.2.host":     "From: dave@corp.example\nSubject: minutes\nDate: Thu, 7 Mar 2024 13:00:00 +0000\n\nAttached soon.\n",
		"lists.mbox": "From erin@lists.example Fri Mar  8 08:00:00 2024\nFrom: erin@lists.example\nSubject: digest 1\n\none\n\n" +
			"From erin@lists.example Sat Mar  9 08:00:00 2024\nFrom: erin@lists.example\nSubject: digest 2\n\ntwo\n",
	}
	if err := os.MkdirAll(filepath.Join(dir, "Inbox", "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw := []byte(strings.ReplaceAll(match, "\n", "\r\n"))
	return quickStartMessage{raw: raw, id: sha(raw), subject: "March invoice", count: 7}
}

type quickStartStatusDoc struct {
	Version string `json:"version"`
	Counts  struct {
		Archived int64 `json:"archived"`
	} `json:"counts"`
}

// quickStartStatus reads /api/v1/status as admin.
func quickStartStatus(t *testing.T, httpAddr, pass string) quickStartStatusDoc {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+httpAddr+"/api/v1/status", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st quickStartStatusDoc
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != 200 {
		t.Fatalf("status: %d %v", resp.StatusCode, err)
	}
	return st
}

// TestVersionDefault: a binary built without -ldflags prints the default
// internal/version.Version, exactly.
func TestVersionDefault(t *testing.T) {
	out, code := cli(t, nil, "version")
	if code != 0 || out != version.Version+"\n" {
		t.Fatalf("version: exit %d, %q; want exactly %q", code, out, version.Version+"\n")
	}
}
