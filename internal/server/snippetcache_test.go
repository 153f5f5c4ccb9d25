package server

import (
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
	c.forget([]string{"a"})
	if _, ok := c.get("a"); ok {
		t.Error("forgotten entry still served")
	}
	now = now.Add(2 * time.Minute)
	if _, ok := c.get("c"); ok {
		t.Error("expired entry still served")
	}
	if c.size != 0 || len(c.entries) != 0 || c.order.Len() != 0 {
		t.Errorf("bookkeeping: size %d, %d entries, %d in order", c.size, len(c.entries), c.order.Len())
	}
}
