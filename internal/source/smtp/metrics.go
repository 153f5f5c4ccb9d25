package smtp

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Values of the reason label of mailarc_smtp_messages_refused_total.
const (
	reasonAuth        = "auth"          // MAIL before required AUTH
	reasonRecipient   = "recipient"     // RCPT TO not in the accepted list
	reasonTooLarge    = "too_large"     // SIZE= or data over the limit
	reasonLineTooLong = "line_too_long" // a line over max_line_length
	reasonEmpty       = "empty"         // no message bytes
	reasonStorage     = "storage"       // ingest failed temporarily
	reasonNoSpace     = "no_space"      // disk full or below min_free_space
	reasonShutdown    = "shutdown"      // server or archive shutting down
	reasonTimeout     = "timeout"       // client too slow during data
	reasonAborted     = "aborted"       // client went away / BDAT reset mid-message
	reasonConnNetwork = "network"       // connection from a disallowed network
	reasonConnBusy    = "busy"          // max_connections reached
)

// metrics are the Prometheus collectors of one Server (or of several
// Servers sharing a Registerer).
type metrics struct {
	connections   prometheus.Counter
	connsActive   prometheus.Gauge
	connsRefused  *prometheus.CounterVec
	accepted      prometheus.Counter
	refused       *prometheus.CounterVec
	bytes         prometheus.Counter
	acceptSeconds prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mailarc_smtp_connections_total",
			Help: "SMTP and LMTP client connections admitted.",
		}),
		connsActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mailarc_smtp_connections_active",
			Help: "SMTP and LMTP client connections currently open.",
		}),
		connsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailarc_smtp_connections_refused_total",
			Help: "Connections refused at connect, by reason: network (not in allowed_networks), busy (max_connections reached), shutdown.",
		}, []string{"reason"}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mailarc_smtp_messages_accepted_total",
			Help: "Messages acknowledged with 250 after they were durably archived.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailarc_smtp_messages_refused_total",
			Help: "Messages or recipients refused, by reason: auth, recipient, too_large, line_too_long, empty, " +
				"storage (temporary ingest failure), no_space (disk full or below min_free_space), shutdown, timeout, aborted (client went away or abandoned BDAT).",
		}, []string{"reason"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mailarc_smtp_bytes_total",
			Help: "Message bytes acknowledged with 250 (after dot-unstuffing).",
		}),
		acceptSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mailarc_smtp_accept_seconds",
			Help:    "Time from the end of DATA/BDAT to the reply (the durable ingest).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.connections = register(reg, m.connections, &err)
	m.connsActive = register(reg, m.connsActive, &err)
	m.connsRefused = register(reg, m.connsRefused, &err)
	m.accepted = register(reg, m.accepted, &err)
	m.refused = register(reg, m.refused, &err)
	m.bytes = register(reg, m.bytes, &err)
	m.acceptSeconds = register(reg, m.acceptSeconds, &err)
	if err != nil {
		return nil, fmt.Errorf("smtp metrics: %w", err)
	}
	return m, nil
}

// register registers c, or returns the already registered equivalent
// collector so that several servers can share one Registerer.
func register[T prometheus.Collector](reg prometheus.Registerer, c T, errp *error) T {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(T); ok {
			return existing
		}
	}
	*errp = errors.Join(*errp, err)
	return c
}
