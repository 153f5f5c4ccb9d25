package web

import "testing"

func TestCountLimit(t *testing.T) {
	for _, c := range []struct {
		req  SearchRequest
		want int
	}{
		{SearchRequest{Limit: 50}, CountCap},
		{SearchRequest{Limit: 50, Offset: 9950}, CountCap + 1},
		{SearchRequest{Limit: 100, Offset: 20000}, 20101},
		{SearchRequest{Limit: 50, ExactCount: true}, 0},
	} {
		if got := c.req.CountLimit(); got != c.want {
			t.Errorf("%+v: CountLimit %d, want %d", c.req, got, c.want)
		}
	}
}
