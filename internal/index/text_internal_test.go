package index

import "testing"

func TestFirstNonASCII(t *testing.T) {
	for _, c := range []struct {
		s    string
		want int
	}{
		{"", 0}, {"abc", 3}, {"abcdefgh", 8}, {"abcdefghé", 8}, {"é", 0},
		{"abcdefg\x80", 7}, {"0123456789abcdef\xff", 16}, {"abcdefghijk\u4e2d", 11},
	} {
		if got := firstNonASCII(c.s); got != c.want {
			t.Errorf("firstNonASCII(%q) = %d, want %d", c.s, got, c.want)
		}
	}
}
