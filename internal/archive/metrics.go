package archive

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailarc/mailarc/internal/store"
)

type metrics struct {
	ingested      prometheus.Counter
	bytes         prometheus.Counter
	duplicates    prometheus.Counter
	commitErrors  prometheus.Counter
	commitSeconds prometheus.Histogram
	batchSize     prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, st store.Store) *metrics {
	m := &metrics{
		ingested: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mailarc_archive_messages_ingested_total",
			Help: "Messages newly stored (duplicates excluded).",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mailarc_archive_bytes_ingested_total",
			Help: "Raw (normalised) bytes of newly stored messages.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mailarc_archive_duplicates_total",
			Help: "Ingests of bytes already archived (metadata merged, nothing stored).",
		}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mailarc_archive_commit_errors_total",
			Help: "Group commits that failed (every message in them got a temporary error).",
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mailarc_archive_commit_seconds",
			Help:    "Duration of one group commit (store sync + catalog transaction).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mailarc_archive_commit_batch_messages",
			Help:    "Messages per group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.ingested, m.bytes, m.duplicates, m.commitErrors, m.commitSeconds, m.batchSize)
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mailarc_store_stored_bytes",
			Help: "Bytes the blob store occupies on disk (compressed, including deleted data awaiting compaction).",
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			s, err := st.Stats(ctx)
			if err != nil {
				return 0
			}
			return float64(s.StoredBytes)
		}))
	}
	return m
}
