package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/server"
	"github.com/mailarc/mailarc/internal/store"
)

// run is one invocation of Run.
type run struct {
	src, dst *server.Node
	opt      Options
	st       *state
	res      *Result
	tables   []catalog.Table
}

func (m *run) progress(p Progress) {
	if m.opt.Progress != nil {
		m.opt.Progress(p)
	}
}

func (m *run) save(ctx context.Context) error {
	return m.dst.Catalog.SetMeta(ctx, StateKey, m.st.encode())
}

// saveTx records the state inside tx (a transaction of the destination's
// catalog writer).
func (m *run) saveTx(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value`,
		StateKey, m.st.encode())
	if err != nil {
		return fmt.Errorf("migrate: record progress: %w", err)
	}
	return nil
}

func (m *run) setPhase(ctx context.Context, phase string) error {
	m.st.Phase = phase
	m.st.Table, m.st.After = "", nil
	m.opt.Logger.Info("migrate: phase", "phase", phase)
	return m.save(ctx)
}

func (m *run) run(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch m.st.Phase {
		case PhaseBlobs:
			if err := m.copyBlobs(ctx); err != nil {
				return err
			}
			if err := m.setPhase(ctx, PhaseCatalog); err != nil {
				return err
			}
		case PhaseCatalog:
			if err := m.copyCatalog(ctx); err != nil {
				return err
			}
			if err := m.setPhase(ctx, PhaseIndex); err != nil {
				return err
			}
		case PhaseIndex:
			if err := m.rebuildIndex(ctx); err != nil {
				return err
			}
			if err := m.setPhase(ctx, PhaseVerify); err != nil {
				return err
			}
		case PhaseVerify, PhaseDone:
			rep, err := verify(ctx, m.src, m.dst, m.tables, m.opt, m.progress)
			if err != nil {
				return err
			}
			m.res.Report = rep
			if !rep.OK() || m.st.Phase == PhaseDone {
				return nil
			}
			m.st.Finished = time.Now().UTC().Truncate(time.Second)
			return m.setPhase(ctx, PhaseDone)
		default:
			return fmt.Errorf("migrate: the destination's %s record has an unknown phase %q", StateKey, m.st.Phase)
		}
	}
}

// copyBlobs copies every blob of the source store with an id above the
// recorded position, in id order (both stores walk in id order).
func (m *run) copyBlobs(ctx context.Context) error {
	ss, err := m.src.Store.Stats(ctx)
	if err != nil {
		return fmt.Errorf("migrate: source store: %w", err)
	}
	m.progress(Progress{Phase: PhaseBlobs, Done: m.st.Blobs, Total: ss.Blobs})
	var batch []string
	var bytes int64
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		gone, err := purged(ctx, m.src.Catalog, m.tables, batch)
		if err != nil {
			return err
		}
		keep := make([]string, 0, len(batch))
		for _, id := range batch {
			if !gone[id] {
				keep = append(keep, id)
			}
		}
		blobs, err := m.fetch(ctx, keep)
		if err != nil {
			return err
		}
		if err := m.dst.Store.Put(ctx, blobs); err != nil {
			return fmt.Errorf("migrate: destination store: %w", err)
		}
		m.st.BlobsAfter = batch[len(batch)-1]
		m.st.Blobs += int64(len(batch))
		batch, bytes = batch[:0], 0
		if err := m.save(ctx); err != nil {
			return err
		}
		m.progress(Progress{Phase: PhaseBlobs, Done: m.st.Blobs, Total: ss.Blobs})
		return nil
	}
	err = m.src.Store.Walk(ctx, func(id string, size int64) error {
		if id <= m.st.BlobsAfter {
			return nil
		}
		batch = append(batch, id)
		bytes += size
		if len(batch) >= m.opt.BatchBlobs || bytes >= m.opt.BatchBytes {
			return flush()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrate: copy blobs: %w", err)
	}
	return flush()
}

// fetch reads the blobs of ids from the source, Concurrency at a time.
func (m *run) fetch(ctx context.Context, ids []string) ([]store.Blob, error) {
	out := make([]store.Blob, len(ids))
	errs := make([]error, len(ids))
	sem := make(chan struct{}, m.opt.Concurrency)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			data, err := m.src.Store.Get(ctx, id)
			if err != nil {
				errs[i] = fmt.Errorf("migrate: read blob %s from the source (run `mailarc verify` on the source): %w", id, err)
				return
			}
			out[i] = store.Blob{ID: id, Data: data}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// copyCatalog copies the planned tables from the recorded position on, then
// sets the feed head.
func (m *run) copyCatalog(ctx context.Context) error {
	started := m.st.Table == ""
	for _, t := range m.tables {
		if !started {
			if t.Name != m.st.Table {
				continue // done in an earlier run
			}
			started = true
		}
		if err := m.copyTable(ctx, t); err != nil {
			return err
		}
	}
	if !started {
		return fmt.Errorf("migrate: the destination's %s record names table %q, which the source does not have", StateKey, m.st.Table)
	}
	head, err := m.src.Catalog.Head(ctx)
	if err != nil {
		return err
	}
	return m.dst.Catalog.SetFeedHead(ctx, head)
}

func (m *run) copyTable(ctx context.Context, t catalog.Table) error {
	var after []any
	if m.st.Table == t.Name {
		after = m.st.After
	}
	total, err := m.src.Catalog.CountRows(ctx, t.Name)
	if err != nil {
		return err
	}
	done := int64(0)
	if after != nil {
		// Rows at or below the resume key are already there.
		done, err = m.dst.Catalog.CountRows(ctx, t.Name)
		if err != nil {
			return err
		}
	}
	m.progress(Progress{Phase: PhaseCatalog, Item: t.Name, Done: done, Total: total})
	keyIdx := make([]int, len(t.Key))
	for i, k := range t.Key {
		for j, c := range t.Columns {
			if c == k {
				keyIdx[i] = j
			}
		}
	}
	isMeta := t.Name == "meta"
	filter := isMeta || t.Name == governanceState
	for {
		rows, err := m.src.Catalog.ReadRows(ctx, t, t.Columns, after, m.opt.BatchRows)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			break
		}
		last := rows[len(rows)-1]
		after = make([]any, len(keyIdx))
		for i, j := range keyIdx {
			after[i] = last[j]
		}
		write := rows
		if filter {
			write = write[:0:0]
			for _, r := range rows {
				if !skipRow(t.Name, r[keyIdx[0]]) {
					write = append(write, r)
				}
			}
		}
		m.st.Table, m.st.After = t.Name, after
		if err := m.dst.Catalog.WriteRows(ctx, t, t.Columns, write, isMeta, func(tx *sql.Tx) error {
			return m.saveTx(ctx, tx)
		}); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		done += int64(len(rows))
		m.res.Rows += int64(len(write))
		m.progress(Progress{Phase: PhaseCatalog, Item: t.Name, Done: done, Total: total})
		if len(rows) < m.opt.BatchRows {
			break
		}
	}
	return nil
}

// rebuildIndex resets the destination's index once and indexes the whole
// feed; a resumed run continues from the index's own watermark.
func (m *run) rebuildIndex(ctx context.Context) error {
	if m.opt.SkipIndex {
		return nil
	}
	if !m.st.IndexReset {
		if err := m.dst.Index.Reset(ctx); err != nil {
			return fmt.Errorf("migrate: reset the destination index: %w", err)
		}
		m.st.IndexReset = true
		if err := m.save(ctx); err != nil {
			return err
		}
	}
	cs, err := m.dst.Catalog.Stats(ctx)
	if err != nil {
		return err
	}
	m.progress(Progress{Phase: PhaseIndex, Total: cs.Messages})
	err = m.dst.NewIndexer().CatchUp(ctx, func(n int) {
		m.progress(Progress{Phase: PhaseIndex, Done: int64(n), Total: cs.Messages})
	})
	if err != nil {
		return fmt.Errorf("migrate: index the destination: %w", err)
	}
	if m.res.Indexed, err = m.dst.Index.Count(ctx); err != nil {
		return fmt.Errorf("migrate: index the destination: %w", err)
	}
	return nil
}

// purged returns the ids among ids whose message was purged (tombstoned)
// or whose object waits in store_deletes for a deletion the source store
// refused: their bytes must not spread to a new store.
func purged(ctx context.Context, c *catalog.Catalog, tables []catalog.Table, ids []string) (map[string]bool, error) {
	out, err := c.IsTombstoned(ctx, ids)
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = map[string]bool{}
	}
	has := false
	for _, t := range tables {
		has = has || t.Name == storeDeletesTable
	}
	if !has || len(ids) == 0 {
		return out, nil
	}
	_, r := c.DB()
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := r.QueryContext(ctx, `SELECT id FROM `+storeDeletesTable+` WHERE id IN (?`+strings.Repeat(",?", len(ids)-1)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("migrate: pending store deletions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("migrate: pending store deletions: %w", err)
		}
		out[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("migrate: pending store deletions: %w", err)
	}
	return out, nil
}
