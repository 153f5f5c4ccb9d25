package ui

import (
	"net/url"
	"testing"

	"github.com/mailarc/mailarc/internal/web"
)

// TestSearchFormPages: the page number is kept within bounds, and in
// relevance order within the depth the search API allows.
func TestSearchFormPages(t *testing.T) {
	for _, tc := range []struct {
		query string
		page  int
	}{
		{"page=3", 3},
		{"page=0", 1},
		{"page=x", 1},
		{"page=100001", 1},
		{"page=5000&sort=-date", 5000},
		{"page=5000&sort=relevance", web.MaxRelevanceDepth / 50},
		{"page=5000&sort=relevance&limit=200", web.MaxRelevanceDepth / 200},
		{"page=7&sort=relevance", 7},
	} {
		v, _ := url.ParseQuery(tc.query)
		if f := readSearchForm(v); f.Page != tc.page {
			t.Errorf("%s: page %d, want %d", tc.query, f.Page, tc.page)
		}
	}
}
