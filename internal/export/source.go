package export

import (
	"context"
	"fmt"
	"time"

	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/query"
)

// IndexSource is the Source of an export over a node's index and catalog:
// the messages matching Query, oldest first, scoped to Addresses.
//
// It pages with a date cursor rather than a growing offset: each page asks
// for messages dated at or after the last date seen, skipping the ones
// already exported at that very second. Memory is one page plus the ids of
// one second, and the walk costs O(n) whatever the export size. Mail that
// arrives during the export is included if its date is after the cursor.
type IndexSource struct {
	Index   index.Index
	Catalog *catalog.Catalog
	// RawFunc reads a message's stored bytes (archive.Raw).
	RawFunc func(ctx context.Context, id string) ([]byte, error)
	Query   *query.Query
	// Addresses scopes the export like index.Options.Addresses: nil sees
	// everything, an empty non-nil slice nothing.
	Addresses []string
	// Visible, when set, is checked for every message as well (the API's
	// per-user rule).
	Visible func(*catalog.Message) bool
	// PageSize is messages per index page (default 500).
	PageSize int
}

// Raw implements Source.
func (s *IndexSource) Raw(ctx context.Context, id string) ([]byte, error) { return s.RawFunc(ctx, id) }

// Each implements Source.
func (s *IndexSource) Each(ctx context.Context, fn func(Meta) error) error {
	page := s.PageSize
	if page <= 0 {
		page = 500
	}
	var root query.Node
	if s.Query != nil {
		root = s.Query.Root
	}
	var cursor time.Time
	started := false
	seen := map[string]bool{} // ids exported at the cursor's second
	for {
		q := &query.Query{Root: root}
		if started {
			after := &query.After{Date: cursor}
			if root == nil {
				q.Root = after
			} else {
				q.Root = &query.And{Nodes: []query.Node{root, after}}
			}
		}
		// Hits at the cursor's second come first (oldest first, ties by
		// seq): skip the ones already exported by offset.
		res, err := s.Index.Search(ctx, q, index.Options{Limit: page, Offset: len(seen), Sort: index.SortDateAsc, Addresses: s.Addresses})
		if err != nil {
			return fmt.Errorf("export: search: %w", err)
		}
		if len(res.Hits) == 0 {
			return nil
		}
		ids := make([]string, 0, len(res.Hits))
		for _, h := range res.Hits {
			if !seen[h.ID] {
				ids = append(ids, h.ID)
			}
		}
		ms, err := s.Catalog.GetMany(ctx, ids)
		if err != nil {
			return fmt.Errorf("export: metadata: %w", err)
		}
		byID := make(map[string]*catalog.Message, len(ms))
		for _, m := range ms {
			byID[m.ID] = m
		}
		if len(ids) == 0 {
			return fmt.Errorf("export: the index changed under the export cursor at %s; retry", cursor.Format(time.RFC3339))
		}
		for _, h := range res.Hits {
			d := h.Date.UTC()
			if !started || !d.Equal(cursor) {
				cursor, started = d, true
				clear(seen)
			}
			if seen[h.ID] {
				continue
			}
			seen[h.ID] = true
			m := byID[h.ID]
			if m == nil {
				continue // purged meanwhile
			}
			if s.Visible != nil && !s.Visible(m) {
				continue
			}
			if err := fn(Meta{ID: m.ID, Date: m.Date, From: m.From, Subject: m.Subject}); err != nil {
				return err
			}
		}
	}
}
