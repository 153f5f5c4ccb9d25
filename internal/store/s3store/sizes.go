package s3store

import (
	"context"
	"fmt"
	"sync"
)

// sizeEntry is what the cache knows of one blob.
type sizeEntry struct {
	raw, stored int64
}

// sizeCache maps blob ids to their sizes and keeps totals, so that Walk and
// Stats need not HEAD every object each time.
//
// Put and Delete update it directly. Entries found by listings ("discovered")
// race with Deletes: a listing may see a blob that a concurrent Delete then
// removes. Discoveries therefore carry the deletion counter read before the
// listing and are dropped if any Delete finished since; while the full load
// for Stats runs, deleted ids are remembered instead so that the load can
// skip exactly those.
type sizeCache struct {
	loadMu sync.Mutex // one load at a time

	mu      sync.Mutex
	m       map[[32]byte]sizeEntry
	raw     int64
	stored  int64
	loaded  bool
	deletes uint64            // number of removals so far
	during  map[[32]byte]bool // ids removed while a load runs; nil otherwise
}

func (c *sizeCache) add(k [32]byte, raw, stored int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addLocked(k, raw, stored)
}

func (c *sizeCache) addLocked(k [32]byte, raw, stored int64) {
	if old, ok := c.m[k]; ok {
		c.raw -= old.raw
		c.stored -= old.stored
	}
	c.m[k] = sizeEntry{raw: raw, stored: stored}
	c.raw += raw
	c.stored += stored
}

func (c *sizeCache) remove(k [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[k]; ok {
		c.raw -= old.raw
		c.stored -= old.stored
		delete(c.m, k)
	}
	c.deletes++
	if c.during != nil {
		c.during[k] = true
	}
}

func (c *sizeCache) get(k [32]byte) (sizeEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	return e, ok
}

// ticket returns the deletion counter, to pass to discover.
func (c *sizeCache) ticket() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deletes
}

// discover records sizes found by a listing, unless a Delete finished after
// the ticket was taken (the blob may be gone) or the blob is known already.
func (c *sizeCache) discover(k [32]byte, raw, stored int64, ticket uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; ok || c.deletes != ticket {
		return
	}
	c.addLocked(k, raw, stored)
}

func (c *sizeCache) totals() (n, raw, stored int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int64(len(c.m)), c.raw, c.stored
}

// load lists the whole bucket once so that the cache covers every blob.
func (c *sizeCache) load(ctx context.Context, s *Store) error {
	c.loadMu.Lock()
	defer c.loadMu.Unlock()
	c.mu.Lock()
	if c.loaded {
		c.mu.Unlock()
		return nil
	}
	c.during = make(map[[32]byte]bool)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.during = nil
		c.mu.Unlock()
	}()
	err := s.listPages(ctx, func(page []listed) error {
		// rawSizes discovers with a ticket; a Delete during the load makes
		// those discoveries drop, so add them here under the load's rule.
		raw, err := s.rawSizes(ctx, page)
		if err != nil {
			return err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, l := range page {
			if raw[i] < 0 || c.during[l.k] {
				continue
			}
			if _, ok := c.m[l.k]; !ok {
				c.addLocked(l.k, raw[i], l.stored)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("s3store: stats: %w", err)
	}
	c.mu.Lock()
	c.loaded = true
	c.mu.Unlock()
	return nil
}
