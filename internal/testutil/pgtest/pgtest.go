// Package pgtest starts throwaway PostgreSQL clusters for tests, from the
// server binaries of Debian's postgresql-15 package
// (/usr/lib/postgresql/15/bin; MAILARC_PG_BINDIR overrides the directory).
//
// A cluster lives in a temporary directory:
//
//	<dir>/data         the data directory (initdb -E UTF8 --locale=C, trust auth)
//	<dir>/sock         the Unix socket directory (.s.PGSQL.<port>)
//	<dir>/postgres.log server output, shown when the test fails
//
// The server listens on that socket and on 127.0.0.1:<port>, runs with
// fsync, synchronous_commit and full_page_writes off (durability is not
// wanted in tests), and is stopped with an immediate shutdown (SIGQUIT to
// the postmaster, what pg_ctl stop -m immediate does) when the test ends;
// the directory is then removed. The postmaster is also killed if the test
// binary dies (parent-death signal), so a crashed test leaves no server
// behind. The superuser role is "postgres".
//
// PostgreSQL refuses to run as root. When the tests run as root the cluster
// is initialised and run as the "postgres" system user if it exists, else as
// "nobody", with the data and socket directories owned by that user.
//
// Start gives each test its own cluster (initdb dominates: about 2-3 s on a
// loaded 2-core machine); Shared starts one cluster on first use and shares
// it between the tests of a package, each test taking its own database with
// CreateDB. When the binaries are missing the test is skipped with a
// message naming the Debian package, or fails under MAILARC_INTEGRATION=1.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailarc/mailarc/internal/testutil"
)

// DefaultBinDir holds the server binaries of Debian's postgresql-15 package.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// BinDir returns the directory of initdb and postgres: $MAILARC_PG_BINDIR
// when set, else DefaultBinDir.
func BinDir() string {
	if d := os.Getenv("MAILARC_PG_BINDIR"); d != "" {
		return d
	}
	return DefaultBinDir
}

// Superuser is the name of the cluster's superuser role.
const Superuser = "postgres"

// Cluster is a running throwaway PostgreSQL server.
type Cluster struct {
	Dir       string // temporary directory holding data/, sock/ and postgres.log
	SocketDir string // directory of the Unix socket
	Port      int    // TCP port on 127.0.0.1 (also names the Unix socket)

	cmd    *exec.Cmd
	exited chan struct{}
	dbSeq  atomic.Int64
}

// Addr returns the TCP address, "127.0.0.1:PORT".
func (c *Cluster) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)) }

// DSN returns a keyword/value connection string for database dbname over
// the Unix socket, as the superuser.
func (c *Cluster) DSN(dbname string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", c.SocketDir, c.Port, Superuser, dbname)
}

// TCPDSN is like DSN but connects over TCP to 127.0.0.1.
func (c *Cluster) TCPDSN(dbname string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s sslmode=disable", c.Port, Superuser, dbname)
}

// CreateDB creates a new, empty database for t and returns its DSN (see
// DSN). Names are unique within the cluster, so parallel tests sharing a
// cluster stay independent. The database disappears with the cluster.
func (c *Cluster) CreateDB(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%s", c.dbSeq.Add(1), dbNamePart(t.Name()))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	return c.DSN(name)
}

// dbNamePart turns a test name into a short identifier fragment.
func dbNamePart(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '_'
	}, s)
	if len(s) > 40 {
		s = s[len(s)-40:]
	}
	return s
}

// Start starts a cluster for t, stopped and removed when t ends. It skips t
// (fails it under MAILARC_INTEGRATION=1) when the binaries are missing.
func Start(t testing.TB) *Cluster {
	t.Helper()
	require(t)
	c, err := start()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := c.stop(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return c
}

// require skips or fails t when the server binaries are missing.
func require(t testing.TB) {
	t.Helper()
	var missing []string
	for _, b := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(BinDir(), b)); err != nil {
			missing = append(missing, b)
		}
	}
	testutil.Require(t, len(missing) == 0, fmt.Sprintf(
		"PostgreSQL server binaries %v not found in %s (apt-get install postgresql-15, or set MAILARC_PG_BINDIR)",
		missing, BinDir()))
}

// Shared is one cluster shared by the tests of a package: declare a
// package-level Shared in a _test.go file, call Get in each test and run the
// package through Main:
//
//	var pg pgtest.Shared
//
//	func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }
//
//	func TestX(t *testing.T) { dsn := pg.Get(t).CreateDB(t); ... }
//
// The cluster starts on the first Get, so a run whose tests are all
// filtered out or skipped starts none. Shared is safe for concurrent use.
type Shared struct {
	mu  sync.Mutex
	c   *Cluster
	err error
}

// Get returns the shared cluster, starting it on first use. It skips t
// (fails it under MAILARC_INTEGRATION=1) when the binaries are missing, and
// fails t when the cluster could not be started.
func (s *Shared) Get(t testing.TB) *Cluster {
	t.Helper()
	require(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c == nil && s.err == nil {
		s.c, s.err = start()
	}
	if s.err != nil {
		t.Fatalf("pgtest: %v", s.err)
	}
	return s.c
}

// Main runs the tests and then stops the shared cluster if one was started.
// It returns the exit code for os.Exit.
func (s *Shared) Main(m *testing.M) int {
	code := m.Run()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != nil {
		if err := s.c.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
		s.c = nil
	}
	return code
}

// runAs is the unprivileged account the server runs as when we are root.
type runAs struct {
	name     string
	uid, gid uint32
}

func unprivileged() (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		return &runAs{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root and neither a postgres nor a nobody user exists to run the server as")
}

func (r *runAs) apply(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if r != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: r.uid, Gid: r.gid, NoSetGroups: true}
	}
}

func (r *runAs) chown(path string) error {
	if r == nil {
		return nil
	}
	if err := os.Chown(path, int(r.uid), int(r.gid)); err != nil {
		return fmt.Errorf("chown %s to %s: %w", path, r.name, err)
	}
	return nil
}

// start initialises and starts a cluster. The caller must call stop.
func start() (c *Cluster, err error) {
	ru, err := unprivileged()
	if err != nil {
		return nil, err
	}
	// Not t.TempDir: its parents are 0700 and the server may run as
	// another user.
	dir, err := os.MkdirTemp("", "mailarc-pg-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("chmod %s: %w", dir, err)
	}
	data, sock := filepath.Join(dir, "data"), filepath.Join(dir, "sock")
	for _, d := range []string{data, sock} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, fmt.Errorf("mkdir: %w", err)
		}
		if err := ru.chown(d); err != nil {
			return nil, err
		}
	}
	var out bytes.Buffer
	initdb := exec.Command(filepath.Join(BinDir(), "initdb"),
		"-D", data, "-U", Superuser, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.Dir = dir
	initdb.Stdout, initdb.Stderr = &out, &out
	initdb.Env = append(os.Environ(), "LC_ALL=C")
	ru.apply(initdb)
	if err := initdb.Run(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out.String())
	}
	// The TCP port is chosen before the server binds it, so another
	// process can take it meanwhile: retry with a new port then.
	for attempt := 1; ; attempt++ {
		c, err = launch(dir, data, sock, ru)
		if err == nil || attempt == 5 || !errors.Is(err, errPortTaken) {
			return c, err
		}
	}
}

var errPortTaken = errors.New("port taken")

// launch starts postgres on a fresh port and waits until it accepts
// connections.
func launch(dir, data, sock string, ru *runAs) (*Cluster, error) {
	port, err := testutil.FreePort()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "postgres.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("server log: %w", err)
	}
	defer logf.Close() // the child keeps its own descriptor
	cmd := exec.Command(filepath.Join(BinDir(), "postgres"), "-D", data,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port="+strconv.Itoa(port),
		"-c", "unix_socket_directories="+sock,
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=300",
		"-c", "shared_buffers=64MB",
		"-c", "logging_collector=off",
	)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	ru.apply(cmd)
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL // no server outlives a crashed test binary
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	c := &Cluster{Dir: dir, SocketDir: sock, Port: port, cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.exited) }()

	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, c.DSN("postgres"))
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return c, nil
		}
		select {
		case <-c.exited:
			log, _ := os.ReadFile(logPath)
			if bytes.Contains(log, []byte("could not bind")) || bytes.Contains(log, []byte("could not create any TCP/IP sockets")) {
				return nil, fmt.Errorf("postgres on port %d: %w", port, errPortTaken)
			}
			return nil, fmt.Errorf("postgres exited during startup: %s\n%s", cmd.ProcessState, log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			return nil, errors.Join(fmt.Errorf("postgres not accepting connections after 60s: %w\n%s", err, log), c.stop())
		}
	}
}

// stop shuts the server down immediately and removes its directory.
func (c *Cluster) stop() error {
	var errs []error
	// SIGQUIT is PostgreSQL's immediate shutdown (pg_ctl stop -m immediate).
	if err := c.cmd.Process.Signal(syscall.SIGQUIT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		errs = append(errs, fmt.Errorf("signal postgres: %w", err))
	}
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
		errs = append(errs, errors.New("postgres ignored SIGQUIT for 30s; killed"))
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		errs = append(errs, fmt.Errorf("remove cluster dir: %w", err))
	}
	return errors.Join(errs...)
}
