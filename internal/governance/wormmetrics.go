package governance

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// wormCollector exports WORMStatus as Prometheus metrics, read at scrape
// time.
type wormCollector struct {
	s                                         *Service
	enabled, lag, resync, retained, held, del *prometheus.Desc
	errors                                    *prometheus.Desc
}

// WORMCollector returns a Prometheus collector of the WORM sync's state:
// mailarc_worm_enabled, mailarc_worm_lag_messages (messages whose object
// lock state is not applied yet), mailarc_worm_resync_pending,
// mailarc_worm_retained_objects, mailarc_worm_held_objects,
// mailarc_worm_pending_deletes and mailarc_worm_errors_total.
func (s *Service) WORMCollector() prometheus.Collector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &wormCollector{
		s:        s,
		enabled:  d("mailarc_worm_enabled", "1 when the object store enforces retention and holds itself (S3 Object Lock)."),
		lag:      d("mailarc_worm_lag_messages", "Messages whose object lock state (retain-until, legal hold) is not applied yet."),
		resync:   d("mailarc_worm_resync_pending", "1 while a full WORM pass after a policy or hold change is pending or running."),
		retained: d("mailarc_worm_retained_objects", "Objects governance has given an S3 retain-until date."),
		held:     d("mailarc_worm_held_objects", "Objects under an S3 legal hold placed by governance."),
		del:      d("mailarc_worm_pending_deletes", "Objects of purged messages the store has not deleted yet (locked or failed; retried)."),
		errors:   d("mailarc_worm_errors_total", "Failed WORM syncs and object lock updates since start."),
	}
}

func (c *wormCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.enabled, c.lag, c.resync, c.retained, c.held, c.del, c.errors} {
		ch <- d
	}
}

func (c *wormCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.s.WORMStatus(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.lag, err)
		return
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	g := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	g(c.enabled, b(st.Enabled))
	g(c.lag, float64(st.LagMessages))
	g(c.resync, b(st.Resync != nil))
	g(c.retained, float64(st.RetainedObjects))
	g(c.held, float64(st.HeldObjects))
	g(c.del, float64(st.PendingDeletes))
	ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(st.Errors))
}
