package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Dialect names the SQL engine behind a Catalog.
type Dialect string

// The supported dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Dialect returns the SQL engine of the catalog. Components that own tables
// use it to pick their PostgreSQL DDL (see MigrateDialects) or, rarely, a
// dialect-specific statement.
func (c *Catalog) Dialect() Dialect { return c.dialect }

// Pool sizes of a PostgreSQL catalog. The writer pool has one connection,
// as the SQLite writer does, so the components keep the in-process write
// serialisation they were written for; across processes the advisory locks
// below serialise what must be serialised.
const (
	pgWriterConns = 1
	pgReaderConns = 8
)

// Advisory lock keys (pg_advisory_xact_lock; one bigint namespace shared by
// every mailarc node on the database).
const (
	// lockFeed serialises Commit and Purge across nodes: seq and mseq are
	// assigned and the transaction committed while it is held, so feed
	// order equals commit order and a reader following seq > watermark
	// never skips an entry that commits later with a smaller seq.
	lockFeed int64 = 0x6d61696c61726301 // "mailarc" 01
	// lockMigrate serialises schema migrations of nodes starting at once.
	lockMigrate int64 = 0x6d61696c61726302
)

// OpenPostgres opens a catalog in the PostgreSQL database named by dsn (a
// libpq keyword/value string or a postgres:// URL, as pgx v5 parses it) and
// runs the core migrations. Several mailarc nodes may open the same
// database at once. The components keep writing SQLite-style "?"
// placeholders: the connections rewrite them (see pgdriver.go).
//
// Reader connections run with default_transaction_read_only=on, like the
// SQLite readers (mode=ro), so a write through the reader handle fails on
// both engines.
func OpenPostgres(ctx context.Context, dsn string) (*Catalog, error) {
	open := func(readOnly bool) (*sql.DB, error) {
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			// pgx's error can quote the DSN, password included.
			return nil, errors.New("catalog: postgres: the DSN does not parse (check the dsn_file)")
		}
		if cfg.RuntimeParams == nil {
			cfg.RuntimeParams = map[string]string{}
		}
		if readOnly {
			cfg.RuntimeParams["default_transaction_read_only"] = "on"
		}
		return sql.OpenDB(pgConnector{Connector: stdlib.GetConnector(*cfg)}), nil
	}
	w, err := open(false)
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(pgWriterConns)
	w.SetMaxIdleConns(pgWriterConns)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("catalog: postgres: connect: %w", err)
	}
	c := &Catalog{w: w, dialect: Postgres}
	if err := c.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	r, err := open(true)
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(pgReaderConns)
	r.SetMaxIdleConns(pgReaderConns)
	c.r = r
	if err := c.prepareCommit(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// LockTx serialises tx against every other transaction, on any node sharing
// the catalog, that locks the same name; the lock is held until tx ends.
// On PostgreSQL it takes a transaction-level advisory lock; on SQLite it
// does nothing (the single writer connection with BEGIN IMMEDIATE already
// serialises write transactions). tx must be a transaction of the writer.
func (c *Catalog) LockTx(ctx context.Context, tx *sql.Tx, name string) error {
	h := fnv.New64a()
	h.Write([]byte(name))
	return c.lockTx(ctx, tx, int64(h.Sum64()&^(1<<63)))
}

func (c *Catalog) lockTx(ctx context.Context, tx *sql.Tx, key int64) error {
	if c.dialect != Postgres {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?)`, key); err != nil {
		return fmt.Errorf("catalog: advisory lock: %w", err)
	}
	return nil
}

// maxDSNFile bounds a DSN file (a connection string is a few hundred bytes).
const maxDSNFile = 64 << 10

// ReadDSNFile reads a PostgreSQL connection string from path (the config's
// catalog.dsn_file), trimming surrounding whitespace. Errors never quote
// the file's content, which holds a password.
func ReadDSNFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("catalog: dsn file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxDSNFile+1))
	if err != nil {
		return "", fmt.Errorf("catalog: dsn file %s: %w", path, err)
	}
	if len(b) > maxDSNFile {
		return "", fmt.Errorf("catalog: dsn file %s: larger than %d bytes; it should hold one connection string", path, maxDSNFile)
	}
	dsn := strings.TrimSpace(string(b))
	if dsn == "" {
		return "", fmt.Errorf("catalog: dsn file %s is empty", path)
	}
	return dsn, nil
}
