package export

import (
	"context"
	"fmt"

	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/query"
)

// IndexSource is the Source of an export over a node's index and catalog:
// the messages matching Query, oldest first, scoped to Addresses.
//
// It pages with the index's keyset cursor (index.Options.After: the last
// hit of the previous page, by date and the index's tie-breaker) rather
// than an offset, so each page costs the same however far the export has
// gone and however many messages share one second. Memory is one page of
// ids and metadata. Mail that arrives during the export is included if it
// sorts after the cursor.
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
	// per-user rule); an error ends the export.
	Visible func(context.Context, *catalog.Message) (bool, error)
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
	q := s.Query
	if q == nil {
		q = &query.Query{}
	}
	var after *index.Hit
	for {
		res, err := s.Index.Search(ctx, q, index.Options{Limit: page, Sort: index.SortDateAsc, Addresses: s.Addresses, After: after})
		if err != nil {
			return fmt.Errorf("export: search: %w", err)
		}
		if len(res.Hits) == 0 {
			return nil
		}
		ids := make([]string, len(res.Hits))
		for i, h := range res.Hits {
			ids[i] = h.ID
		}
		ms, err := s.Catalog.GetMany(ctx, ids)
		if err != nil {
			return fmt.Errorf("export: metadata: %w", err)
		}
		byID := make(map[string]*catalog.Message, len(ms))
		for _, m := range ms {
			byID[m.ID] = m
		}
		for _, h := range res.Hits {
			m := byID[h.ID]
			if m == nil {
				continue // purged meanwhile
			}
			if s.Visible != nil {
				ok, err := s.Visible(ctx, m)
				if err != nil {
					return fmt.Errorf("export: visibility of %s: %w", m.ID, err)
				}
				if !ok {
					continue
				}
			}
			if err := fn(Meta{ID: m.ID, Date: m.Date, From: m.From, Subject: m.Subject}); err != nil {
				return err
			}
		}
		last := res.Hits[len(res.Hits)-1]
		after = &last
	}
}
