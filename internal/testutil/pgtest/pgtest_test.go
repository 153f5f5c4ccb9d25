package pgtest_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailarc/mailarc/internal/testutil/pgtest"
)

var shared pgtest.Shared

func TestMain(m *testing.M) { os.Exit(shared.Main(m)) }

func query(t *testing.T, dsn, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func exec(t *testing.T, dsn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func TestStartStop(t *testing.T) {
	t.Parallel()
	var c *pgtest.Cluster
	t.Run("run", func(t *testing.T) {
		begin := time.Now()
		c = pgtest.Start(t)
		t.Logf("cluster started in %v", time.Since(begin))
		if v := query(t, c.DSN("postgres"), "SHOW server_version_num"); !strings.HasPrefix(v, "15") {
			t.Errorf("server_version_num = %s, want 15xxxx", v)
		}
		if v := query(t, c.TCPDSN("postgres"), "SELECT inet_server_addr()::text"); !strings.HasPrefix(v, "127.0.0.1") {
			t.Errorf("TCP server address = %s, want 127.0.0.1", v)
		}
		if v := query(t, c.DSN("postgres"), "SHOW fsync"); v != "off" {
			t.Errorf("fsync = %s, want off", v)
		}
		if v := query(t, c.DSN("postgres"), "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()"); v != "UTF8" {
			t.Errorf("encoding = %s, want UTF8", v)
		}
	})
	if c == nil {
		return // skipped
	}
	// The subtest's cleanup stopped the server and removed its directory.
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("cluster dir %s still exists after the test: %v", c.Dir, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, c.TCPDSN("postgres")); err == nil {
		conn.Close(ctx)
		t.Errorf("server still accepts connections after the test")
	}
}

func TestSharedCreateDB(t *testing.T) {
	t.Parallel()
	c := shared.Get(t)
	a, b := c.CreateDB(t), c.CreateDB(t)
	if a == b {
		t.Fatalf("CreateDB returned the same DSN twice: %s", a)
	}
	na := query(t, a, "SELECT current_database()")
	nb := query(t, b, "SELECT current_database()")
	if na == nb || na == "postgres" {
		t.Errorf("databases %q and %q: want two distinct new databases", na, nb)
	}
	// Independent: a table in one is not visible in the other.
	exec(t, a, "CREATE TABLE only_here(x int)")
	if v := query(t, a, "SELECT coalesce(to_regclass('only_here')::text, 'none')"); v != "only_here" {
		t.Errorf("table in first database: %s", v)
	}
	if v := query(t, b, "SELECT coalesce(to_regclass('only_here')::text, 'none')"); v != "none" {
		t.Errorf("table of the first database visible in the second: %s", v)
	}
}

func TestSharedIsShared(t *testing.T) {
	t.Parallel()
	first, second := shared.Get(t), shared.Get(t)
	if first != second {
		t.Fatal("Shared.Get returned different clusters")
	}
}
