package server

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestSnippetCache(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newSnippetCache(10, time.Minute)
	c.now = func() time.Time { return now }
	c.put("a", "aaaa")
	c.put("b", "bbbb")
	if v, ok := c.get("a"); !ok || v != "aaaa" {
		t.Fatalf("get a: %q %v", v, ok)
	}
	c.put("c", "cccc") // 12 bytes > 10: the least recently used (b) goes
	if _, ok := c.get("b"); ok {
		t.Error("b not evicted")
	}
	if _, ok := c.get("a"); !ok {
		t.Error("a (recently used) evicted")
	}
	c.put("big", strings.Repeat("x", 11)) // larger than the cache: not kept
	if _, ok := c.get("big"); ok || c.size > c.max {
		t.Errorf("oversized entry kept; size %d", c.size)
	}
	now = now.Add(2 * time.Minute)
	if _, ok := c.get("c"); ok {
		t.Error("expired entry still served")
	}
	c.put("d", "dd")
	c.clear() // after a purge
	if _, ok := c.get("d"); ok || c.size != 0 {
		t.Errorf("cleared entry still served; size %d", c.size)
	}
	if _, ok := c.get("a"); ok {
		t.Error("entry still served after clear")
	}
	if c.size != 0 || len(c.entries) != 0 || c.order.Len() != 0 {
		t.Errorf("bookkeeping: size %d, %d entries, %d in order", c.size, len(c.entries), c.order.Len())
	}
}

// TestPurgeClearsSnippetTexts: the hook that runs after a retention purge
// empties the running searcher's text cache.
func TestPurgeClearsSnippetTexts(t *testing.T) {
	n := &Node{}
	c := newSnippetCache(snippetCacheBytes, snippetCacheTTL)
	c.put("purged", "text of a purged message")
	n.searchTexts.Store(c)
	if err := n.scrubIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.get("purged"); ok {
		t.Error("snippet text survived the purge hook")
	}
}
