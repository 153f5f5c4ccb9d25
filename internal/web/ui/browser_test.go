package ui_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/auth"
	"github.com/mailarc/mailarc/internal/config"
	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/server"
	"github.com/mailarc/mailarc/internal/testutil"
	"github.com/mailarc/mailarc/internal/web"
)

// findChromium returns the browser binary or skips.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testutil.Require(t, false, "no chromium in PATH (apt-get install chromium)")
	return ""
}

func screenshotDir(t *testing.T) string {
	dir := os.Getenv("MAILARC_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "mailarc-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

type uiNode struct {
	base string
	n    *server.Node
}

func startNode(t *testing.T) *uiNode {
	t.Helper()
	testutil.Require(t, index.FTS5Compiled(), "this test binary was built without -tags sqlite_fts5 (use make test)")
	cfg := config.Default()
	cfg.NodeName = "ui-test"
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.SMTP.Listen = []string{"127.0.0.1:0"}
	n, err := server.Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan server.Listeners, 1)
	done := make(chan error, 1)
	go func() {
		done <- n.Serve(ctx, server.ServeOptions{AdminPassword: "admin-pass-1", Ready: func(l server.Listeners) { ready <- l }})
	}()
	var ls server.Listeners
	select {
	case ls = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := n.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return &uiNode{base: "http://" + ls.HTTP.String(), n: n}
}

func (u *uiNode) ingest(t *testing.T, raw string) string {
	t.Helper()
	res, err := u.n.Archive.Ingest(context.Background(), []byte(strings.ReplaceAll(raw, "\n", "\r\n")), archive.Origin{Source: "api"})
	if err != nil {
		t.Fatal(err)
	}
	return res.ID
}

func (u *uiNode) waitIndexed(t *testing.T, q string, want int) {
	t.Helper()
	admin := &auth.User{Name: "admin", Role: auth.RoleAdmin}
	testutil.Eventually(t, 30*time.Second, "indexing of "+q, func() bool {
		res, err := u.n.Searcher().Search(context.Background(), web.SearchRequest{Query: q, Limit: 1, Sort: "-date", User: admin})
		return err == nil && res.Total >= want
	})
}

var attachmentBytes = []byte("%PDF-1.4\nreport bytes \x00\x01\x02\xff end\n")

func mailWithAttachment(from, to, subject, body string) string {
	return fmt.Sprintf(`From: %s
To: %s
Subject: %s
Date: Tue, 05 Mar 2024 10:00:00 +0000
Message-ID: <%d.budget@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: text/plain; charset=utf-8

%s
--b1
Content-Type: application/pdf; name="report.pdf"
Content-Disposition: attachment; filename="report.pdf"
Content-Transfer-Encoding: base64

%s
--b1--
`, from, to, subject, len(subject), body, base64.StdEncoding.EncodeToString(attachmentBytes))
}

func htmlMail(i int, html string) string {
	return fmt.Sprintf(`From: Mallory <mallory@evil.example>
To: Alice <alice@example.com>
Subject: hostile %d
Date: Wed, 06 Mar 2024 10:%02d:00 +0000
Message-ID: <hostile-%d@evil.example>
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8

%s
`, i, i%60, i, html)
}

// hostile payloads; each tries to reach the hook in the parent page.
var hostile = []string{
	`<script>parent.__pwned();top.__pwned();parent.postMessage("pwned","*")</script>`,
	`<img src="x" onerror="parent.__pwned();top.__pwned();parent.postMessage('pwned','*')">`,
	`<body onload="parent.__pwned();parent.postMessage('pwned','*')"><p>body handler</p></body>`,
	`<a id="l" href="javascript:parent.__pwned();parent.postMessage('pwned','*')">click me</a>`,
	`<svg xmlns="http://www.w3.org/2000/svg"><script>parent.__pwned();parent.postMessage("pwned","*")</script><circle r="5" onload="parent.__pwned()"/></svg>`,
	`<div style="background:url(javascript:parent.__pwned())">css</div><style>@import url(javascript:parent.__pwned());</style>`,
	`<meta http-equiv="refresh" content="0;url=javascript:parent.postMessage('pwned','*')"><p>refresh</p>`,
	`<iframe srcdoc="<script>top.postMessage('pwned','*')</script>"></iframe><object data="javascript:parent.__pwned()"></object>`,
	`<<script>script>parent.__pwned()<</script>/script><img src=x onerror=parent.__pwned() <p <b>unclosed <table><td><script>__pwned()</script>`,
	`<details open ontoggle="parent.postMessage('pwned','*')">x</details><video><source onerror="parent.postMessage('pwned','*')"></video><math><mtext><table><mglyph><style><img src=x onerror=parent.postMessage('pwned','*')>`,
	`<form action="javascript:parent.__pwned()"><button>go</button></form><base href="javascript:parent.__pwned()//"><a href="/x">rel</a>`,
}

// hookScript runs in every new document of the top frame: it counts calls
// to __pwned and "pwned" messages, and notes iframe loads.
const hookScript = `if (window.top === window) {
  window.__pwnedCount = 0;
  window.__pwned = function () { window.__pwnedCount++; };
  window.addEventListener("message", function (e) { if (String(e.data).indexOf("pwned") >= 0) window.__pwnedCount++; });
  window.__framesLoaded = 0;
  document.addEventListener("load", function (e) { if (e.target && e.target.tagName === "IFRAME") window.__framesLoaded++; }, true);
}`

func TestBrowser(t *testing.T) {
	chrome := findChromium(t)
	nd := startNode(t)
	shots := screenshotDir(t)
	ctx := context.Background()

	if err := nd.n.Auth.AddUser(ctx, "alice", "alice-pass-1", auth.RoleUser, []string{"alice@example.com"}); err != nil {
		t.Fatal(err)
	}
	mine := nd.ingest(t, mailWithAttachment("Alice <alice@example.com>", "Bob <bob@example.com>", "Quarterly budget review", "Here is the budget for Q1, see the report."))
	theirs := nd.ingest(t, mailWithAttachment("Carol <carol@example.com>", "Dave <dave@example.com>", "Secret budget plans", "The other budget, not for Alice."))
	for i := 0; i < 30; i++ {
		nd.ingest(t, fmt.Sprintf("From: Bob <bob@example.com>\nTo: Alice <alice@example.com>\nSubject: Weekly note %d about the budget\nDate: Mon, %02d Feb 2024 09:00:00 +0000\nMessage-ID: <note-%d@example.com>\n\nNote %d: budget line items & <tags> are fine.\n", i, i%28+1, i, i))
	}
	var hostileIDs []string
	for i, h := range hostile {
		hostileIDs = append(hostileIDs, nd.ingest(t, htmlMail(i, h)))
	}
	hostileIDs = append(hostileIDs, corpusHTML(t, nd, 4)...)
	nd.waitIndexed(t, "budget", 32)
	nd.waitIndexed(t, "hostile", len(hostile))

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	// The first Run starts the browser; it must not carry the timeout.
	if _, err := chromedp.Call(bctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: hookScript}); err != nil {
		t.Fatalf("start browser: %v", err)
	}
	bctx, cancelTimeout := context.WithTimeout(bctx, 100*time.Second)
	defer cancelTimeout()
	b := &browser{t: t, ctx: bctx, shots: shots}

	// Log in (wrong password first).
	b.do("login page",
		chromedp.Navigate(nd.base+"/search?q=budget"),
		chromedp.WaitVisible(css("input[name=username]")),
		b.shot("login"),
		chromedp.SendKeys(css("input[name=username]"), "admin"),
		chromedp.SendKeys(css("input[name=password]"), "wrong-password"),
		chromedp.Submit(css("input[name=password]")),
		chromedp.WaitVisible(css(".alert")),
	)
	if text := b.text(".alert"); !strings.Contains(text, "Wrong user name or password") {
		t.Errorf("bad login shows %q", text)
	}
	b.do("login",
		chromedp.SendKeys(css("input[name=password]"), "admin-pass-1"),
		chromedp.Submit(css("input[name=password]")),
		chromedp.WaitVisible(css("table.list")),
	)
	if text := b.text("#results-title"); !strings.Contains(text, "of 32 messages") {
		t.Errorf("results header %q, want 32 messages", text)
	}
	if n := eval[int](b, `document.querySelectorAll(".snippet mark").length`); n == 0 {
		t.Error("no highlighted hits in snippets")
	}
	b.do("search screenshot", b.shot("search"))
	// The snippet's "<tags>" is shown as text, not markup.
	if !eval[bool](b, `Array.from(document.querySelectorAll(".snippet")).some(e => e.textContent.includes("<tags>"))`) {
		t.Error("escaped text in snippets lost")
	}

	// Paging and helpers: 32 results, 25 per page, only with attachment.
	b.do("paging", chromedp.Navigate(nd.base+"/search?q=budget&limit=25&page=2"))
	if text := b.text("#results-title"); !strings.Contains(text, "26–32 of 32") {
		t.Errorf("page 2 header %q", text)
	}
	b.do("has attachment", chromedp.Navigate(nd.base+"/search?q=budget&has=attachment&sort=date"))
	if text := b.text("#results-title"); !strings.Contains(text, "1–2 of 2") {
		t.Errorf("has:attachment header %q", text)
	}
	b.do("bad query", chromedp.Navigate(nd.base+"/search?q=%28unclosed"), chromedp.WaitVisible(css(".alert")))
	if text := b.text(".alert"); !strings.Contains(strings.ToLower(text), "understand") {
		t.Errorf("bad query shows %q", text)
	}

	// Open a message from the results and download the attachment.
	b.do("open message",
		chromedp.Navigate(nd.base+"/search?q=quarterly"),
		chromedp.Click(css("td.c-subj a")),
		chromedp.WaitVisible(css("#subject")),
	)
	if text := b.text("#subject"); text != "Quarterly budget review" {
		t.Errorf("message subject %q", text)
	}
	b.do("message screenshot", b.shot("message"))
	got := eval[string](b, `(async () => {
		const a = document.querySelector("a[data-attachment]");
		const r = await fetch(a.href);
		const b = new Uint8Array(await r.arrayBuffer());
		let s = ""; for (const x of b) s += String.fromCharCode(x);
		return r.status + ":" + btoa(s);
	})()`, chromedp.EvalAwaitPromise)
	if want := "200:" + base64.StdEncoding.EncodeToString(attachmentBytes); got != want {
		t.Errorf("attachment download = %q, want %q", got, want)
	}
	got = eval[string](b, `(async () => { const r = await fetch(document.querySelector("a[download$='.eml']").href); return r.status + ":" + (await r.text()).includes("Quarterly budget review"); })()`, chromedp.EvalAwaitPromise)
	if got != "200:true" {
		t.Errorf(".eml download = %q", got)
	}
	b.do("source view", chromedp.Navigate(nd.base+"/messages/"+mine+"/source"))
	if text := b.text("pre.source"); !strings.Contains(text, "Message-ID:") {
		t.Error("source view lacks headers")
	}

	// Hostile HTML never runs.
	for i, id := range hostileIDs {
		b.do(fmt.Sprintf("hostile %d", i),
			chromedp.Navigate(nd.base+"/messages/"+id),
			chromedp.WaitVisible(css("iframe.htmlbody")),
		)
		if _, err := chromedp.Run(bctx, chromedp.Poll[bool](`window.__framesLoaded > 0`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
			t.Fatalf("hostile %d: frame did not load: %v", i, err)
		}
		sandbox := eval[string](b, `document.querySelector("iframe.htmlbody").getAttribute("sandbox")`)
		doc := eval[string](b, `(async () => (await fetch(document.querySelector("iframe.htmlbody").src)).text())()`, chromedp.EvalAwaitPromise)
		if n := eval[int](b, `window.__pwnedCount`); n != 0 {
			t.Errorf("hostile message %d executed script (%d hook calls)", i, n)
		}
		if strings.Contains(sandbox, "allow-scripts") || strings.Contains(sandbox, "allow-same-origin") {
			t.Errorf("iframe sandbox %q", sandbox)
		}
		low := strings.ToLower(doc)
		for _, bad := range []string{"<script", "onerror", "onload", "javascript:", "ontoggle"} {
			if strings.Contains(low, bad) {
				t.Errorf("hostile %d: frame document contains %q", i, bad)
			}
		}
		if i == 0 {
			b.do("hostile screenshot", b.shot("message-hostile"))
		}
		if i == len(hostileIDs)-1 {
			b.do("html screenshot", b.shot("message-html"))
		}
	}
	// The hook does detect calls and messages (positive control).
	eval[any](b, `__pwned(); parent.postMessage("pwned", "*"); 0`)
	if _, err := chromedp.Run(bctx, chromedp.Poll[bool](`window.__pwnedCount === 2`, chromedp.WithPollingTimeout(5*time.Second))); err != nil {
		t.Errorf("hook control: %v", err)
	}

	// Status and holds pages.
	b.do("status", chromedp.Navigate(nd.base+"/status"), chromedp.WaitVisible(css(".tiles")), b.shot("status"))
	if text := b.text(".tiles"); !strings.Contains(strings.ToLower(text), "archived") {
		t.Errorf("status tiles %q", text)
	}
	b.do("holds", chromedp.Navigate(nd.base+"/search?q=budget"), chromedp.WaitVisible(css("table.list")),
		chromedp.Click(css(`a[href^="/holds?q="]`)), chromedp.WaitVisible(css("h1")))
	if eval[bool](b, `!!document.querySelector("#hold-query")`) {
		b.do("create hold",
			chromedp.SendKeys(css("#hold-name"), "Case 17"),
			chromedp.Submit(css("#hold-name")),
			chromedp.WaitVisible(css(".notice")),
		)
		if text := b.text("main"); !strings.Contains(text, "Case 17") || !strings.Contains(text, "budget") {
			t.Errorf("hold not listed: %q", text)
		}
	} else {
		t.Log("holds are not wired on this node (governance missing); hold creation not tested")
	}
	b.do("holds screenshot", b.shot("holds"))
	for _, p := range []string{"/users", "/audit", "/retention"} {
		b.do(p, chromedp.Navigate(nd.base+p), chromedp.WaitVisible(css("h1")), b.shot(strings.TrimPrefix(p, "/")))
	}
	// Phone-sized pages.
	b.do("mobile", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Navigate(nd.base+"/search?q=budget"), chromedp.WaitVisible(css("table.list")), b.shot("search-phone"),
		chromedp.Navigate(nd.base+"/messages/"+mine), chromedp.WaitVisible(css("#subject")), b.shot("message-phone"),
		chromedp.EmulateReset())

	// The session cookie is HttpOnly; after logout it is dead everywhere.
	if c := eval[string](b, `document.cookie`); strings.Contains(c, auth.SessionCookie) {
		t.Error("session cookie readable from JavaScript")
	}
	oldCookie := b.sessionCookie()
	b.do("logout", chromedp.Navigate(nd.base+"/search"), chromedp.Click(css("form.logout button")), chromedp.WaitVisible(css("input[name=username]")))
	req, _ := http.NewRequest("GET", nd.base+"/api/v1/search?q=budget", nil)
	req.AddCookie(&http.Cookie{Name: auth.SessionCookie, Value: oldCookie})
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("API with logged-out cookie: %d, want 401", resp.StatusCode)
		}
	}

	// alice sees only her own mail.
	b.do("alice login",
		chromedp.Navigate(nd.base+"/login"),
		chromedp.WaitVisible(css("input[name=username]")),
		chromedp.SendKeys(css("input[name=username]"), "alice"),
		chromedp.SendKeys(css("input[name=password]"), "alice-pass-1"),
		chromedp.Submit(css("input[name=password]")),
		chromedp.WaitVisible(css("#q")),
		chromedp.Navigate(nd.base+"/search?q=budget+has%3Aattachment"),
	)
	if text := b.text("#results-title"); !strings.Contains(text, "1–1 of 1") {
		t.Errorf("alice's search header %q, want exactly her one message", text)
	}
	subjects := eval[string](b, `Array.from(document.querySelectorAll("td.c-subj a")).map(a => a.textContent).join("|")`)
	if strings.Contains(subjects, "Secret") || !strings.Contains(subjects, "Quarterly") {
		t.Errorf("alice sees %q", subjects)
	}
	for _, p := range []string{"/messages/" + theirs, "/messages/" + theirs + "/html", "/messages/" + theirs + "/source", "/api/v1/messages/" + theirs + "/raw"} {
		resp, err := chromedp.RunResponse(bctx, chromedp.Navigate(nd.base+p))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if resp.Status != http.StatusNotFound {
			t.Errorf("alice GET %s = %d, want 404", p, resp.Status)
		}
	}
	if resp, err := chromedp.RunResponse(bctx, chromedp.Navigate(nd.base+"/messages/"+mine)); err != nil || resp.Status != http.StatusOK {
		t.Errorf("alice GET her message: %v %v", resp, err)
	}
	if resp, err := chromedp.RunResponse(bctx, chromedp.Navigate(nd.base+"/users")); err != nil || resp.Status != http.StatusForbidden {
		t.Errorf("alice GET /users: %v %v", resp, err)
	}
}

type browser struct {
	t     *testing.T
	ctx   context.Context
	shots string
}

func css(s string) chromedp.CSS { return chromedp.CSS(s) }

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(css(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func eval[T any](b *browser, expr string, opts ...chromedp.EvaluateOption) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		b.t.Fatalf("evaluate %.60q: %v", expr, err)
	}
	return v
}

func (b *browser) shot(name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		buf, err := chromedp.FullScreenshot(100)(ctx, tg)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(b.shots, name+".png"), buf, 0o644)
	})
}

func (b *browser) sessionCookie() string {
	b.t.Helper()
	res, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{})
	if err != nil {
		b.t.Fatalf("cookies: %v", err)
	}
	for _, c := range res.Cookies {
		if c.Name == auth.SessionCookie {
			if !c.HTTPOnly || c.SameSite != network.CookieSameSiteLax {
				b.t.Errorf("session cookie flags: httpOnly=%v sameSite=%q", c.HTTPOnly, c.SameSite)
			}
			return c.Value
		}
	}
	b.t.Fatal("session cookie not found")
	return ""
}

// corpusHTML ingests up to n HTML mails from the usrp corpus.
func corpusHTML(t *testing.T, nd *uiNode, n int) []string {
	t.Helper()
	root := filepath.Join(testutil.RepoRoot(t), "..", "shared", "corpus", "real", "usrp")
	if _, err := os.Stat(root); err != nil {
		testutil.Require(t, false, "the shared corpus is not present at "+root)
	}
	var ids []string
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || len(ids) >= n || !strings.HasSuffix(p, ".eml") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(bytes.ToLower(b), []byte("content-type: text/html")) {
			return nil
		}
		res, err := nd.n.Archive.Ingest(context.Background(), b, archive.Origin{Source: "import"})
		if err == nil {
			ids = append(ids, res.ID)
		}
		return nil
	})
	return ids
}
