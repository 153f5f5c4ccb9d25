package server

import (
	"container/list"
	"sync"
	"time"
)

// snippetCache keeps the prepared text of recently shown messages (what a
// snippet is cut from: the first snippetTextBytes of text, whitespace
// collapsed), so that paging through results or refining a query does not
// read, decompress and parse the same messages again. It is bounded by
// bytes and entries expire after a TTL, so the text of a purged message
// does not outlive the purge by more than that (the index stops returning
// the id at once).
type snippetCache struct {
	mu      sync.Mutex
	max     int
	size    int
	ttl     time.Duration
	now     func() time.Time
	order   *list.List // front = most recently used; values are *snippetEntry
	entries map[string]*list.Element
}

type snippetEntry struct {
	id, text string
	added    time.Time
}

// Snippet cache bounds: 32 MiB of text, entries kept 10 minutes.
const (
	snippetCacheBytes = 32 << 20
	snippetCacheTTL   = 10 * time.Minute
)

func newSnippetCache(maxBytes int, ttl time.Duration) *snippetCache {
	return &snippetCache{max: maxBytes, ttl: ttl, now: time.Now, order: list.New(), entries: map[string]*list.Element{}}
}

// get returns the cached text of id.
func (c *snippetCache) get(id string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[id]
	if !ok {
		return "", false
	}
	e := el.Value.(*snippetEntry)
	if c.now().Sub(e.added) > c.ttl {
		c.remove(el)
		return "", false
	}
	c.order.MoveToFront(el)
	return e.text, true
}

// put stores the text of id, evicting the least recently used entries
// beyond the byte bound.
func (c *snippetCache) put(id, text string) {
	if len(text) > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[id]; ok {
		c.remove(el)
	}
	c.entries[id] = c.order.PushFront(&snippetEntry{id: id, text: text, added: c.now()})
	c.size += len(text)
	for c.size > c.max {
		c.remove(c.order.Back())
	}
}

// clear drops every entry (after a retention purge).
func (c *snippetCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.order.Init()
	clear(c.entries)
	c.size = 0
}

func (c *snippetCache) remove(el *list.Element) {
	e := c.order.Remove(el).(*snippetEntry)
	delete(c.entries, e.id)
	c.size -= len(e.text)
}
