// Package e2e holds black-box tests that build the mailarc binary and drive
// real processes over the wire and the CLI: kill -9, restarts, verify.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/testutil"
)

// binary is the mailarc executable built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mailarc-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "mailarc")
	cmd := exec.Command("go", "build", "-tags", "sqlite_fts5", "-o", binary, "github.com/mailarc/mailarc/cmd/mailarc")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building mailarc:", err)
		os.Exit(1)
	}
	code := pg.Main(m) // runs the tests, then stops the shared PostgreSQL cluster if one started
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := testutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// proc is one `mailarc serve` process.
type proc struct {
	t        *testing.T
	dir      string
	config   string
	httpAddr string
	smtpAddr string
	// mirrorPort is the mirror listener's port (mirroring tests).
	mirrorPort int
	cmd        *exec.Cmd
	log        *testutil.SyncBuffer
	exited     chan struct{}
	// bin and env, when set, override the binary and add environment
	// variables for the next start (mirroring tests).
	bin string
	env []string
}

const adminPass = "e2e-admin-pass"

// newProc writes a config for a node in dir (extra TOML appended).
func newProc(t *testing.T, dir, extra string) *proc {
	t.Helper()
	p := &proc{t: t, dir: dir,
		httpAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		smtpAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
	}
	p.config = filepath.Join(dir, "mailarc.toml")
	cfg := fmt.Sprintf("node_name = \"e2e\"\ndata_dir = %q\n%s\n[http]\nlisten = %q\n[smtp]\nlisten = [%q]\n",
		filepath.Join(dir, "data"), extra, p.httpAddr, p.smtpAddr)
	if err := os.WriteFile(p.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *proc) start() {
	p.t.Helper()
	p.log = &testutil.SyncBuffer{}
	bin := binary
	if p.bin != "" {
		bin = p.bin
	}
	p.cmd = exec.Command(bin, "serve", "--config", p.config)
	p.cmd.Env = append(append(os.Environ(), "MAILARC_ADMIN_PASSWORD="+adminPass), p.env...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.exited = make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	testutil.Eventually(p.t, 60*time.Second, "mailarc to become ready", func() bool {
		select {
		case <-p.exited:
			p.t.Fatalf("mailarc exited: %s", p.log.String())
		default:
		}
		resp, err := http.Get("http://" + p.httpAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	p.cmd = nil
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		p.t.Fatalf("mailarc did not stop on SIGTERM: %s", p.log.String())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		p.t.Fatalf("mailarc exited %d after SIGTERM: %s", code, p.log.String())
	}
	p.cmd = nil
}

func (p *proc) url(path string) string { return "http://" + p.httpAddr + path }

func (p *proc) do(method, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(context.Background(), method, p.url(path), bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.SetBasicAuth("admin", adminPass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// cli runs a mailarc subcommand and returns its combined output and exit code.
func cli(t *testing.T, stdin []byte, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "MAILARC_USER=admin", "MAILARC_PASSWORD="+adminPass)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	return out.String(), code
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// mirrorPeer is one [[mirror.peers]] entry of a test node.
type mirrorPeer struct {
	name string
	port int
}

// newMirrorProc prepares a mirrored node in dir: its own node_name, HTTP
// port, SMTP port, mirror port, secret file and peers. Reconfigure it with
// writeMirrorConfig before a restart.
func newMirrorProc(t *testing.T, dir, name string, secret string, peers ...mirrorPeer) *proc {
	t.Helper()
	p := &proc{t: t, dir: dir, httpAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		smtpAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), mirrorPort: freePort(t)}
	p.config = filepath.Join(dir, "mailarc.toml")
	p.writeMirrorConfig(name, secret, peers...)
	t.Cleanup(func() { p.kill() })
	return p
}

// writeMirrorConfig (re)writes the node's config and secret file.
func (p *proc) writeMirrorConfig(name, secret string, peers ...mirrorPeer) {
	p.t.Helper()
	secretFile := filepath.Join(p.dir, "secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		p.t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "node_name = %q\ndata_dir = %q\n[http]\nlisten = %q\n[smtp]\nlisten = [%q]\n", name, filepath.Join(p.dir, "data"), p.httpAddr, p.smtpAddr)
	fmt.Fprintf(&b, "[mirror]\nlisten = \"127.0.0.1:%d\"\nshared_secret_file = %q\n", p.mirrorPort, secretFile)
	for _, pr := range peers {
		fmt.Fprintf(&b, "[[mirror.peers]]\nname = %q\nurl = \"https://127.0.0.1:%d\"\n", pr.name, pr.port)
	}
	if err := os.WriteFile(p.config, []byte(b.String()), 0o600); err != nil {
		p.t.Fatal(err)
	}
}

// waitExit waits for the process to exit by itself and returns its code.
func (p *proc) waitExit(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.t.Fatalf("mailarc did not exit within %s: %s", timeout, p.log.String())
	}
	code := p.cmd.ProcessState.ExitCode()
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	p.cmd = nil
	return code
}
