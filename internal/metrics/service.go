package metrics

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sagabox/sagabox/pkg/consumer"
	"github.com/sagabox/sagabox/pkg/outbox"
)

var (
	outboxRowsDesc = prometheus.NewDesc(Namespace+"_outbox_rows_pending_prune",
		"Rows in the service's outbox table; each is kept until pruned after OUTBOX_RETENTION.",
		[]string{"service"}, nil)
	outboxAgeDesc = prometheus.NewDesc(Namespace+"_outbox_oldest_row_age_seconds",
		"Age of the oldest row in the service's outbox table (0 when empty).",
		[]string{"service"}, nil)
	parkedDesc = prometheus.NewDesc(Namespace+"_parked_messages",
		"Messages waiting in the service's parkedmessage table for an operator (status PARKED).",
		[]string{"service"}, nil)
)

// RegisterDatabase registers gauges read from a service's database when
// scraped: sagabox_outbox_rows_pending_prune{service},
// sagabox_outbox_oldest_row_age_seconds{service} and
// sagabox_parked_messages{service}. They describe the database, which the
// instances of a service share: every instance reports the same values
// (aggregate them with max, not sum).
func RegisterDatabase(reg prometheus.Registerer, service string, pool *pgxpool.Pool) {
	reg.MustRegister(collectorFunc(func(ch chan<- prometheus.Metric) {
		ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
		defer cancel()
		var age float64
		b, err := outbox.ReadBacklog(ctx, pool)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(outboxRowsDesc, err)
		} else {
			ch <- prometheus.MustNewConstMetric(outboxRowsDesc, prometheus.GaugeValue, float64(b.Rows), service)
			if !b.Oldest.IsZero() {
				age = b.Age().Seconds()
			}
			ch <- prometheus.MustNewConstMetric(outboxAgeDesc, prometheus.GaugeValue, age, service)
		}
		n, err := consumer.CountParked(ctx, pool)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(parkedDesc, err)
			return
		}
		ch <- prometheus.MustNewConstMetric(parkedDesc, prometheus.GaugeValue, float64(n), service)
	}))
}
