package server

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// indexCollector exports the index block of /api/v1/status as Prometheus
// gauges, computed at scrape time from the same sources (indexStatus):
// mailarc_index_lag_messages, mailarc_index_lag_seconds,
// mailarc_index_indexed_messages and mailarc_archive_messages.
type indexCollector struct {
	n                                *Node
	lagMsgs, lagSecs, docs, messages *prometheus.Desc
}

func newIndexCollector(n *Node) *indexCollector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &indexCollector{
		n:        n,
		lagMsgs:  d("mailarc_index_lag_messages", "Archived messages (or metadata changes) not yet in the full-text index."),
		lagSecs:  d("mailarc_index_lag_seconds", "Age of the oldest change the indexer has not indexed yet; 0 when caught up."),
		docs:     d("mailarc_index_indexed_messages", "Messages in the full-text index."),
		messages: d("mailarc_archive_messages", "Messages in the archive (catalog)."),
	}
}

func (c *indexCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.lagMsgs, c.lagSecs, c.docs, c.messages} {
		ch <- d
	}
}

func (c *indexCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n := c.n
	if n.Catalog == nil || n.Index == nil {
		return // closed
	}
	cs, err := n.Catalog.Stats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.messages, err)
		return
	}
	g := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	g(c.messages, float64(cs.Messages))
	var st Status
	if err := n.indexStatus(ctx, &st, cs); err != nil {
		// A wrong 0 would read as "caught up": report the failure instead.
		ch <- prometheus.NewInvalidMetric(c.lagMsgs, fmt.Errorf("index status: %w", err))
		return
	}
	g(c.docs, float64(st.Counts.Indexed))
	g(c.lagMsgs, float64(st.Index.LagMessages))
	g(c.lagSecs, st.Index.LagSeconds)
}
