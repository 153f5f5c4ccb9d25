package ui_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
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
	// Inline (cid:) images: a synthetic multipart/related mail and a real
	// one from the corpus; and a mail with a remote image on a local server
	// that counts the requests reaching it.
	pixel := testPNG(t, 24, 12)
	var remoteHits atomic.Int64
	imgSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		remoteHits.Add(1)
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(pixel)
	}))
	defer imgSrv.Close()
	cidID := nd.ingest(t, cidMail(pixel))
	corpusCID := nd.ingestFile(t, filepath.Join(corpusRoot(t), "001", "001363.eml"))
	remoteID := nd.ingest(t, "From: News <news@example.com>\nTo: Alice <alice@example.com>\nSubject: remote picture\n"+
		"Date: Thu, 07 Mar 2024 10:00:00 +0000\nMIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n\n"+
		`<p>Remote: <img id="remote" src="`+imgSrv.URL+`/pixel.png" alt="remote pixel"></p>`+"\n")
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
		if _, err := chromedp.Run(b.step(), chromedp.Poll[bool](`window.__framesLoaded > 0`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
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
	if _, err := chromedp.Run(b.step(), chromedp.Poll[bool](`window.__pwnedCount === 2`, chromedp.WithPollingTimeout(5*time.Second))); err != nil {
		t.Errorf("hook control: %v", err)
	}

	// cid: images show inside the sandboxed frame; their parts are marked
	// inline in the attachment list.
	for _, c := range []struct{ name, id, ok string }{
		{"corpus", corpusCID, `Array.from(document.images).some(i => i.src.startsWith("data:image/") && i.naturalWidth > 0)`},
		{"synthetic", cidID, `document.images.length === 1 && document.images[0].src.startsWith("data:image/png") && document.images[0].naturalWidth === 24`},
	} {
		b.openMessage(nd.base, c.id)
		b.frameWait("cid image of the "+c.name+" mail", c.ok)
		if !eval[bool](b, `Array.from(document.querySelectorAll(".attachments .badge")).some(e => e.textContent === "inline")`) {
			t.Errorf("%s cid mail: no attachment marked inline", c.name)
		}
		if eval[bool](b, `!!document.querySelector("#show-images")`) {
			t.Errorf("%s cid mail offers “Show remote images” without remote images", c.name)
		}
	}
	b.do("cid screenshot", b.shot("message-cid"))

	// Remote images: nothing reaches the image server until asked for.
	b.openMessage(nd.base, remoteID)
	if n := remoteHits.Load(); n != 0 {
		t.Errorf("the remote image was requested %d times before “Show remote images”", n)
	}
	if !frameEval[bool](b, `document.getElementById("remote") !== null && document.getElementById("remote").naturalWidth === 0`) {
		t.Error("the blocked remote image is missing from the frame or shown")
	}
	if _, err := chromedp.RunResponse(b.step(), chromedp.Click(css("#show-images"))); err != nil {
		t.Fatalf("show remote images: %v", err)
	}
	b.framesLoaded("remote images view")
	testutil.Eventually(t, 10*time.Second, "the remote image request", func() bool { return remoteHits.Load() > 0 })
	b.frameWait("the remote image", `document.getElementById("remote").naturalWidth === 24`)
	if text := b.text(".bodybar"); !strings.Contains(text, "Remote images shown") {
		t.Errorf("images view bar %q", text)
	}

	// Status: the ingest tile agrees with the node's status document.
	b.do("status", chromedp.Navigate(nd.base+"/status"), chromedp.WaitVisible(css(".tiles")), b.shot("status"))
	if text := b.text(".tiles"); !strings.Contains(strings.ToLower(text), "archived") {
		t.Errorf("status tiles %q", text)
	}
	stAny, err := nd.n.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ingested := stAny.(server.Status).Ingest.Total
	if least := int64(32 + len(hostile) + 3); ingested < least {
		t.Errorf("status ingest total %d, want at least %d", ingested, least)
	}
	tile := b.text("#ingest-tile")
	rate, err := strconv.ParseFloat(b.text("#ingest-tile .v"), 64)
	if !strings.Contains(strings.ToLower(tile), "ingest rate") || !strings.Contains(tile, fmt.Sprintf("%d since start", ingested)) || err != nil || rate <= 0 {
		t.Errorf("ingest tile %q (rate %v, %v), want a rate > 0 and %d since start", tile, rate, err, ingested)
	}

	// Holds: create one from a search; it counts the messages it holds.
	b.do("holds", chromedp.Navigate(nd.base+"/search?q=budget"), chromedp.WaitVisible(css("table.list")),
		chromedp.Click(css(`a[href^="/holds?q="]`)), chromedp.WaitVisible(css("h1")))
	if !eval[bool](b, `!!document.querySelector("#hold-query")`) {
		t.Fatal("holds are not wired on this node (governance missing): the holds page has no form")
	}
	b.do("create hold",
		chromedp.SendKeys(css("#hold-name"), "Case 17"),
		chromedp.Submit(css("#hold-name")),
		chromedp.WaitVisible(css(".notice")),
	)
	if text := b.text("main"); !strings.Contains(text, "Case 17") || !strings.Contains(text, "budget") {
		t.Errorf("hold not listed: %q", text)
	}
	if n := eval[string](b, rowWith("Case 17")+`.querySelector("td.num").textContent.trim()`); n != "32" {
		t.Errorf("hold Case 17 shows %q messages, want 32", n)
	}
	b.do("holds screenshot", b.shot("holds"))

	// Retention: add a policy, dry run while the hold keeps everything.
	b.do("retention edit",
		chromedp.Navigate(nd.base+"/retention"), chromedp.WaitVisible(css("#default")),
		chromedp.SendKeys(css(`table.edit tbody tr:nth-child(1) input[name=name]`), "old notes"),
		chromedp.SendKeys(css(`table.edit tbody tr:nth-child(1) input[name=query]`), "subject:weekly"),
		chromedp.SendKeys(css(`table.edit tbody tr:nth-child(1) input[name=keep]`), "30d"),
	)
	b.submit("save retention", `form[action="/retention"] button[type=submit]`)
	if text := b.text(".notice"); !strings.Contains(text, "Retention policies saved") {
		t.Errorf("retention save notice %q", text)
	}
	if v := eval[string](b, `document.querySelector("table.edit tbody tr:nth-child(1) input[name=query]").value`); v != "subject:weekly" {
		t.Errorf("saved policy query %q", v)
	}
	b.submit("dry run", `form[action="/retention/run"] input[name=dry_run] ~ button`)
	if text := b.text(`p[role=status]`); !strings.Contains(text, "would purge 0 messages") || !strings.Contains(text, "30 expired messages are kept by holds") {
		t.Errorf("dry run under the hold: %q, want 0 to purge and 30 held", text)
	}
	b.do("retention screenshot", b.shot("retention"))

	// An admin releases the hold.
	b.do("holds again", chromedp.Navigate(nd.base+"/holds"), chromedp.WaitVisible(css("table.list")))
	action := eval[string](b, rowWith("Case 17")+`.querySelector("form").getAttribute("action")`)
	b.confirmAll()
	b.submit("release hold", `form[action="`+action+`"] button`)
	if text := b.text("main"); !strings.Contains(text, "Hold released") || strings.Contains(text, "Case 17") {
		t.Errorf("after release: %q", text)
	}

	// Now the dry run counts the notes, and a confirmed run purges them.
	b.do("retention again", chromedp.Navigate(nd.base+"/retention"), chromedp.WaitVisible(css("#default")))
	b.submit("dry run 2", `form[action="/retention/run"] input[name=dry_run] ~ button`)
	if text := b.text(`p[role=status]`); !strings.Contains(text, "would purge 30 messages") || !strings.Contains(text, "0 expired messages are kept") {
		t.Errorf("dry run without the hold: %q, want 30 to purge", text)
	}
	b.confirmAll()
	b.submit("purge", `form[action="/retention/run"] input[name=confirm] ~ button`)
	if text := b.text(".notice"); !strings.Contains(text, "Purged 30 messages") {
		t.Errorf("purge notice %q", text)
	}
	b.do("weekly gone", chromedp.Navigate(nd.base+"/search?q=subject%3Aweekly"), chromedp.WaitVisible(css("#results-title")))
	if text := b.text("#results-title"); !strings.Contains(text, "No messages found") {
		t.Errorf("after the purge a search for the notes says %q", text)
	}

	// Users: add, set a password, delete.
	b.do("add user",
		chromedp.Navigate(nd.base+"/users"), chromedp.WaitVisible(css("#u-name")),
		chromedp.SendKeys(css("#u-name"), "bob2"),
		chromedp.SendKeys(css("#u-pass"), "bob2-pass-1"),
		chromedp.SetValue(css("#u-role"), "auditor"),
		chromedp.SendKeys(css("#u-addr"), "bob2@example.com"),
	)
	b.submit("add user", `form[action="/users"] button[type=submit]`)
	if text := b.text(".notice"); !strings.Contains(text, "bob2") || !strings.Contains(text, "added") {
		t.Errorf("add user notice %q", text)
	}
	if role := eval[string](b, rowWith("bob2")+`.querySelector(".badge").textContent`); role != "auditor" {
		t.Errorf("bob2 listed with role %q", role)
	}
	b.do("users screenshot", b.shot("users"))
	b.do("new password", chromedp.SendKeys(css(`form[action="/users/bob2/password"] input[name=new_password]`), "bob2-pass-2"))
	b.submit("set password", `form[action="/users/bob2/password"] button`)
	if text := b.text(".notice"); !strings.Contains(text, "Password of “bob2” changed") {
		t.Errorf("set password notice %q", text)
	}
	if _, err := nd.n.Auth.Login(ctx, "bob2", "bob2-pass-2", "192.0.2.7"); err != nil {
		t.Errorf("bob2's new password: %v", err)
	}
	b.confirmAll()
	b.submit("delete user", `form[action="/users/bob2/delete"] button`)
	if text := b.text(".notice"); !strings.Contains(text, "deleted") || eval[bool](b, `!!document.querySelector('form[action="/users/bob2/delete"]')`) {
		t.Errorf("delete user: notice %q, row still there: %v", text, eval[bool](b, `!!document.querySelector('form[action="/users/bob2/delete"]')`))
	}

	// Audit log filters.
	b.do("audit filter",
		chromedp.Navigate(nd.base+"/audit"), chromedp.WaitVisible(css("#a-action")),
		chromedp.SendKeys(css("#a-action"), "hold.*"),
		chromedp.SendKeys(css("#a-user"), "admin"),
	)
	b.submit("audit filter", "form.filters button[type=submit]")
	rows := eval[[]string](b, `Array.from(document.querySelectorAll("table.audit tbody tr")).map(r => r.cells[2].textContent + " " + r.cells[3].textContent)`)
	actions := map[string]bool{}
	for _, r := range rows {
		user, act, _ := strings.Cut(r, " ")
		if user != "admin" || !strings.HasPrefix(act, "hold.") {
			t.Errorf("audit filter hold.*/admin shows %q", r)
		}
		actions[act] = true
	}
	if !actions["hold.create"] || !actions["hold.release"] {
		t.Errorf("audit filter hold.*/admin: actions %v, want hold.create and hold.release", actions)
	}
	b.do("audit screenshot", b.shot("audit"))
	b.do("audit filter none", chromedp.Navigate(nd.base+"/audit?action=hold.create&user=alice"), chromedp.WaitVisible(css("h1")))
	if text := b.text("main"); !strings.Contains(text, "No entries match") {
		t.Errorf("audit filter hold.create/alice: %q", text)
	}
	b.do("audit filter users", chromedp.Navigate(nd.base+"/audit?action=user.*"), chromedp.WaitVisible(css("table.audit")))
	if got := eval[string](b, `Array.from(document.querySelectorAll("table.audit tbody tr")).filter(r => r.cells[4].textContent.includes('"bob2"')).map(r => r.cells[3].textContent).sort().join(",")`); got != "user.add,user.delete,user.password" {
		t.Errorf("audit filter user.*, entries on bob2: %q", got)
	}

	// Without JavaScript, in a separate browser context: log in, search,
	// open a message, download the attachment and the .eml.
	noJS(t, bctx, nd.base, mine)
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
		resp, err := chromedp.RunResponse(b.step(), chromedp.Navigate(nd.base+p))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if resp.Status != http.StatusNotFound {
			t.Errorf("alice GET %s = %d, want 404", p, resp.Status)
		}
	}
	if resp, err := chromedp.RunResponse(b.step(), chromedp.Navigate(nd.base+"/messages/"+mine)); err != nil || resp.Status != http.StatusOK {
		t.Errorf("alice GET her message: %v %v", resp, err)
	}
	if resp, err := chromedp.RunResponse(b.step(), chromedp.Navigate(nd.base+"/users")); err != nil || resp.Status != http.StatusForbidden {
		t.Errorf("alice GET /users: %v %v", resp, err)
	}

	// Last, as it locks this client out: six wrong passwords in a row are
	// throttled.
	b.do("sign out", chromedp.Navigate(nd.base+"/search"), chromedp.Click(css("form.logout button")), chromedp.WaitVisible(css("input[name=username]")))
	for i := 1; i <= 6; i++ {
		resp, err := chromedp.RunResponse(b.step(),
			chromedp.SetValue(css("input[name=username]"), "alice"),
			chromedp.SetValue(css("input[name=password]"), fmt.Sprint("wrong-", i)),
			chromedp.Click(css(`form button[type=submit]`)),
		)
		if err != nil {
			t.Fatalf("wrong login %d: %v", i, err)
		}
		if i == 1 && resp.Status != http.StatusUnauthorized {
			t.Errorf("first wrong login: %d, want 401", resp.Status)
		}
		if i == 6 {
			if text := b.text(".alert"); resp.Status != http.StatusTooManyRequests || !strings.Contains(text, "Too many failed attempts") {
				t.Errorf("sixth wrong login: %d %q, want 429 “Too many failed attempts”", resp.Status, text)
			}
		}
	}
}

// noJS runs the core flows in a new browser context with script execution
// disabled: sign in, search, open a message, download.
func noJS(t *testing.T, bctx context.Context, base, id string) {
	t.Helper()
	nctx, cancel := chromedp.NewContext(bctx, chromedp.WithNewBrowserContext())
	defer cancel()
	if _, err := chromedp.Call(nctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		t.Fatalf("disable scripts: %v", err)
	}
	dl := t.TempDir()
	if _, err := chromedp.CallBrowser(nctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, BrowserContextID: chromedp.FromContext(nctx).BrowserContextID, DownloadPath: dl,
	}); err != nil {
		t.Fatalf("download behaviour: %v", err)
	}
	nb := &browser{t: t, ctx: nctx}
	nb.do("no-JS login page",
		chromedp.Navigate(base+"/search"),
		chromedp.WaitVisible(css("input[name=username]")),
		chromedp.SendKeys(css("input[name=username]"), "admin"),
		chromedp.SendKeys(css("input[name=password]"), "admin-pass-1"),
	)
	nb.submit("no-JS login", `form button[type=submit]`)
	nb.do("no-JS query", chromedp.SendKeys(css("#q"), "budget has:attachment"))
	nb.submit("no-JS search", `form.search button[type=submit]`)
	if text := nb.text("#results-title"); !strings.Contains(text, "1–2 of 2") {
		t.Errorf("no-JS search: %q", text)
	}
	nb.do("no-JS query 2", chromedp.Navigate(base+"/search"), chromedp.SendKeys(css("#q"), "quarterly"))
	nb.submit("no-JS search 2", `form.search button[type=submit]`)
	nb.submit("no-JS open", "td.c-subj a")
	if text := nb.text("#subject"); text != "Quarterly budget review" {
		t.Errorf("no-JS message subject %q", text)
	}
	nb.do("no-JS download", chromedp.Click(css("a[data-attachment]")), chromedp.Click(css(`a[download$=".eml"]`)))
	testutil.Eventually(t, 15*time.Second, "the downloads", func() bool {
		pdf, err1 := os.ReadFile(filepath.Join(dl, "report.pdf"))
		eml, err2 := os.ReadFile(filepath.Join(dl, id+".eml"))
		return err1 == nil && err2 == nil && bytes.Equal(pdf, attachmentBytes) && bytes.Contains(eml, []byte("Subject: Quarterly budget review"))
	})
}

// testPNG returns a w×h PNG.
func testPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for x := 0; x < w; x++ {
		for y := 0; y < h; y++ {
			img.Set(x, y, color.RGBA{R: uint8(10 * x), G: 90, B: uint8(20 * y), A: 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// cidMail is a multipart/related mail whose HTML shows img as a cid: image.
func cidMail(img []byte) string {
	return `From: Designer <design@example.com>
To: Alice <alice@example.com>
Subject: logo proposal
Date: Fri, 08 Mar 2024 10:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/related; boundary="rel"

--rel
Content-Type: text/html; charset=utf-8

<p>Our new logo:</p><p><img src="cid:logo.1@example.com" alt="the logo"></p>
--rel
Content-Type: image/png; name="logo.png"
Content-ID: <logo.1@example.com>
Content-Disposition: inline; filename="logo.png"
Content-Transfer-Encoding: base64

` + base64.StdEncoding.EncodeToString(img) + `
--rel--
`
}

// rowWith is a JavaScript expression for the first table row containing text.
func rowWith(text string) string {
	return fmt.Sprintf(`Array.from(document.querySelectorAll("table.list tbody tr")).find(r => r.textContent.includes(%q))`, text)
}

// submit clicks a button (or link) and waits for the page it leads to,
// after any redirect, to load with 200.
func (b *browser) submit(what, sel string) {
	b.t.Helper()
	resp, err := chromedp.RunResponse(b.step(), chromedp.Click(css(sel)))
	if err != nil || resp.Status != http.StatusOK {
		b.t.Fatalf("%s: %v %v", what, resp, err)
	}
}

// confirmAll makes the page's confirmation dialogs (data-confirm) answer yes.
func (b *browser) confirmAll() {
	b.t.Helper()
	eval[bool](b, `window.confirm = () => true; true`)
}

// openMessage opens a message page and waits for its HTML frame.
func (b *browser) openMessage(base, id string) {
	b.t.Helper()
	b.do("open "+id, chromedp.Navigate(base+"/messages/"+id), chromedp.WaitVisible(css("iframe.htmlbody")))
	b.framesLoaded("message " + id)
}

// framesLoaded waits for the page's iframe to load (counted by hookScript).
func (b *browser) framesLoaded(what string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.step(), chromedp.Poll[bool](`window.__framesLoaded > 0`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		b.t.Fatalf("%s: frame did not load: %v", what, err)
	}
}

// frameEval evaluates expr in the document of the page's message frame,
// in an isolated world of its own (the frame runs no script of its own).
// Chromium runs the sandboxed frame in a process of its own, as a target of
// the type "iframe"; when it does not, the frame is in the page's tree.
func frameEval[T any](b *browser, expr string) T {
	b.t.Helper()
	src := eval[string](b, `document.querySelector("iframe.htmlbody").src`)
	infos, err := chromedp.Targets(b.step())
	if err != nil {
		b.t.Fatalf("targets: %v", err)
	}
	ctx := b.step()
	var frame cdp.FrameID
	for _, in := range infos {
		if in.Type == "iframe" && in.URL == src {
			fctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithTargetID(in.TargetID), chromedp.WithDetachOnCancel())
			defer cancel()
			// The first call on a new chromedp context attaches it to its
			// target for as long as the context it is given lives, so it
			// must not carry a step's deadline.
			if err := chromedp.Do(fctx); err != nil {
				b.t.Fatalf("attach to the frame's target: %v", err)
			}
			ctx, frame = b.bound(fctx), cdp.FrameID(in.TargetID)
		}
	}
	if frame == "" {
		tree, err := chromedp.Call(b.step(), page.GetFrameTree, cdp.Empty{})
		if err != nil {
			b.t.Fatalf("frame tree: %v", err)
		}
		for _, c := range tree.FrameTree.ChildFrames {
			if c.Frame.URL == src {
				frame = c.Frame.ID
			}
		}
	}
	if frame == "" {
		b.t.Fatalf("no frame of %s", src)
	}
	world, err := chromedp.Call(ctx, page.CreateIsolatedWorld, page.CreateIsolatedWorldParams{FrameID: frame, WorldName: "mailarc-test"})
	if err != nil {
		b.t.Fatalf("isolated world: %v", err)
	}
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, func(p *runtime.EvaluateParams) { p.ContextID = world.ExecutionContextID }))
	if err != nil {
		b.t.Fatalf("evaluate in frame %.60q: %v", expr, err)
	}
	return v
}

// frameWait polls expr in the message frame until it is true.
func (b *browser) frameWait(what, expr string) {
	b.t.Helper()
	testutil.Eventually(b.t, 10*time.Second, what, func() bool { return frameEval[bool](b, expr) })
}

func corpusRoot(t *testing.T) string {
	t.Helper()
	root := filepath.Join(testutil.RepoRoot(t), "..", "shared", "corpus", "real", "usrp")
	if _, err := os.Stat(root); err != nil {
		testutil.Require(t, false, "the shared corpus is not present at "+root)
	}
	return root
}

func (u *uiNode) ingestFile(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := u.n.Archive.Ingest(context.Background(), raw, archive.Origin{Source: "import"})
	if err != nil {
		t.Fatal(err)
	}
	return res.ID
}

// browser drives one Chromium tab (ctx) for a test. Each step it takes is
// bounded by stepBudget; the test as a whole only by go test's -timeout, so
// a loaded machine slows the script down without failing it.
type browser struct {
	t     *testing.T
	ctx   context.Context
	shots string
}

// stepBudget bounds one browser step: a navigation and its waits, an
// evaluation, a click and the page it leads to.
const stepBudget = 30 * time.Second

// step returns a context for one step in the tab, bounded by stepBudget.
func (b *browser) step() context.Context { return b.bound(b.ctx) }

// bound returns ctx bounded by stepBudget, cancelled at the latest when the
// test ends.
func (b *browser) bound(ctx context.Context) context.Context {
	ctx, cancel := context.WithTimeout(ctx, stepBudget)
	b.t.Cleanup(cancel)
	return ctx
}

func css(s string) chromedp.CSS { return chromedp.CSS(s) }

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.step(), steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.step(), chromedp.Text(css(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func eval[T any](b *browser, expr string, opts ...chromedp.EvaluateOption) T {
	b.t.Helper()
	v, err := chromedp.Run(b.step(), chromedp.Evaluate[T](expr, opts...))
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
	res, err := chromedp.Call(b.step(), network.GetCookies, network.GetCookiesParams{})
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
	root := corpusRoot(t)
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
