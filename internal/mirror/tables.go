package mirror

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/mailarc/mailarc/internal/archive"
	"time"
)

// migrations are the mirror's own catalog tables (component "mirror").
var migrations = []string{
	`CREATE TABLE mirror_pins (peer TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, pinned INTEGER NOT NULL) WITHOUT ROWID;
	CREATE TABLE mirror_parked (peer TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, reason TEXT NOT NULL,
		parked INTEGER NOT NULL, PRIMARY KEY (peer, id)) WITHOUT ROWID;`,
	// 2: anti-entropy progress, peers' tombstones.
	`CREATE TABLE mirror_ae (peer TEXT PRIMARY KEY,
		instance TEXT NOT NULL DEFAULT '', head INTEGER NOT NULL DEFAULT 0,
		wanted TEXT NOT NULL DEFAULT '',
		pass_started INTEGER NOT NULL DEFAULT 0, pass_head INTEGER NOT NULL DEFAULT 0, pass_reason TEXT NOT NULL DEFAULT '',
		total INTEGER NOT NULL DEFAULT 0, verified INTEGER NOT NULL DEFAULT 0,
		last_complete INTEGER NOT NULL DEFAULT 0, confirmed_head INTEGER NOT NULL DEFAULT 0,
		pulled INTEGER NOT NULL DEFAULT 0, pushed INTEGER NOT NULL DEFAULT 0, passes INTEGER NOT NULL DEFAULT 0,
		last_error TEXT NOT NULL DEFAULT '') WITHOUT ROWID;
	CREATE TABLE mirror_ae_done (peer TEXT NOT NULL, bucket TEXT NOT NULL, PRIMARY KEY (peer, bucket)) WITHOUT ROWID;
	CREATE TABLE mirror_peer_tombs (peer TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (peer, id)) WITHOUT ROWID;`,
}

// MigrateTables creates or upgrades the mirror's catalog tables (done by
// every entry point that uses them; exported for tools that prepare a
// catalog offline, such as mailarc migrate).
func MigrateTables(ctx context.Context, cat *archive.Catalog) error {
	return cat.MigrateDialects(ctx, "mirror", migrations, pgMigrations)
}

// pgMigrations are migrations for a PostgreSQL catalog, version for version.
var pgMigrations = []string{
	`CREATE TABLE mirror_pins (peer TEXT COLLATE "C" PRIMARY KEY, fingerprint TEXT NOT NULL, pinned BIGINT NOT NULL);
	CREATE TABLE mirror_parked (peer TEXT COLLATE "C" NOT NULL, id TEXT COLLATE "C" NOT NULL, seq BIGINT NOT NULL, reason TEXT NOT NULL,
		parked BIGINT NOT NULL, PRIMARY KEY (peer, id));`,
	// 2: anti-entropy progress, peers' tombstones.
	`CREATE TABLE mirror_ae (peer TEXT COLLATE "C" PRIMARY KEY,
		instance TEXT NOT NULL DEFAULT '', head BIGINT NOT NULL DEFAULT 0,
		wanted TEXT NOT NULL DEFAULT '',
		pass_started BIGINT NOT NULL DEFAULT 0, pass_head BIGINT NOT NULL DEFAULT 0, pass_reason TEXT NOT NULL DEFAULT '',
		total BIGINT NOT NULL DEFAULT 0, verified BIGINT NOT NULL DEFAULT 0,
		last_complete BIGINT NOT NULL DEFAULT 0, confirmed_head BIGINT NOT NULL DEFAULT 0,
		pulled BIGINT NOT NULL DEFAULT 0, pushed BIGINT NOT NULL DEFAULT 0, passes BIGINT NOT NULL DEFAULT 0,
		last_error TEXT NOT NULL DEFAULT '');
	CREATE TABLE mirror_ae_done (peer TEXT COLLATE "C" NOT NULL, bucket TEXT COLLATE "C" NOT NULL, PRIMARY KEY (peer, bucket));
	CREATE TABLE mirror_peer_tombs (peer TEXT COLLATE "C" NOT NULL, id TEXT COLLATE "C" NOT NULL, PRIMARY KEY (peer, id));`,
}

// tables wraps the mirror's catalog tables.
type tables struct {
	cat  *archive.Catalog
	w, r *sql.DB
}

func openTables(ctx context.Context, cat *archive.Catalog) (*tables, error) {
	if err := MigrateTables(ctx, cat); err != nil {
		return nil, err
	}
	w, r := cat.DB()
	return &tables{cat: cat, w: w, r: r}, nil
}

func (t *tables) pinned(ctx context.Context, peer string) (string, error) {
	var fp string
	err := t.r.QueryRowContext(ctx, `SELECT fingerprint FROM mirror_pins WHERE peer=?`, peer).Scan(&fp)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("mirror: pinned certificate of %s: %w", peer, err)
	}
	return fp, nil
}

// pin records fp for peer unless a pin already exists (it never replaces one).
func (t *tables) pin(ctx context.Context, peer, fp string) error {
	_, err := t.w.ExecContext(ctx, `INSERT INTO mirror_pins(peer, fingerprint, pinned) VALUES (?,?,?) ON CONFLICT(peer) DO NOTHING`,
		peer, fp, time.Now().Unix())
	if err != nil {
		return fmt.Errorf("mirror: pin certificate of %s: %w", peer, err)
	}
	return nil
}

func (t *tables) park(ctx context.Context, peer, id string, seq int64, reason string) error {
	_, err := t.w.ExecContext(ctx, `INSERT INTO mirror_parked(peer, id, seq, reason, parked) VALUES (?,?,?,?,?)
		ON CONFLICT(peer, id) DO UPDATE SET reason=excluded.reason, parked=excluded.parked`, peer, id, seq, reason, time.Now().Unix())
	if err != nil {
		return fmt.Errorf("mirror: park %s for %s: %w", id, peer, err)
	}
	return nil
}

// isParked reports whether id is parked for peer.
func (t *tables) isParked(ctx context.Context, peer, id string) (bool, error) {
	var n int
	if err := t.r.QueryRowContext(ctx, `SELECT count(*) FROM mirror_parked WHERE peer=? AND id=?`, peer, id).Scan(&n); err != nil {
		return false, fmt.Errorf("mirror: parked %s for %s: %w", id, peer, err)
	}
	return n > 0, nil
}

func (t *tables) parkedCount(ctx context.Context, peer string) (int64, error) {
	var n int64
	if err := t.r.QueryRowContext(ctx, `SELECT count(*) FROM mirror_parked WHERE peer=?`, peer).Scan(&n); err != nil {
		return 0, fmt.Errorf("mirror: parked count: %w", err)
	}
	return n, nil
}

// Repair forgets the pinned certificate of peer, so the next successful
// authentication pins the peer's current certificate (`mailarc peers
// repair NAME`). It reports whether a pin existed.
func Repair(ctx context.Context, cat *archive.Catalog, peer string) (bool, error) {
	t, err := openTables(ctx, cat)
	if err != nil {
		return false, err
	}
	r, err := t.w.ExecContext(ctx, `DELETE FROM mirror_pins WHERE peer=?`, peer)
	if err != nil {
		return false, fmt.Errorf("mirror: repair %s: %w", peer, err)
	}
	n, _ := r.RowsAffected()
	return n > 0, nil
}
