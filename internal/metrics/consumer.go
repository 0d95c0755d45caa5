package metrics

import (
	"context"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sagabox/sagabox/pkg/consumer"
)

// Consumer counts what a service's consumer does with each record, by
// topic (pkg/consumer's Observer).
type Consumer struct {
	consumed *prometheus.CounterVec
	retried  *prometheus.CounterVec
	parked   *prometheus.CounterVec
	early    *prometheus.CounterVec
}

// NewConsumer registers the counters of consumer group on reg:
//
//	sagabox_messages_consumed_total{consumer,topic,result}  result applied|duplicate
//	sagabox_messages_retried_total{consumer,topic}         failed attempts tried again
//	sagabox_messages_parked_total{consumer,topic}
//	sagabox_messages_early_total{consumer,topic}           arrived ahead of the state they answer, waited for
func NewConsumer(reg prometheus.Registerer, group string) *Consumer {
	labels := prometheus.Labels{"consumer": group}
	c := &Consumer{
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "messages_consumed_total", ConstLabels: labels,
			Help: "Records handled by the consumer: applied (journal and effect committed) or skipped as a duplicate.",
		}, []string{"topic", "result"}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "messages_retried_total", ConstLabels: labels,
			Help: "Failed attempts at a record that were retried.",
		}, []string{"topic"}),
		parked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "messages_parked_total", ConstLabels: labels,
			Help: "Records parked in parkedmessage (undecodable, permanent error, or out of attempts).",
		}, []string{"topic"}),
		early: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "messages_early_total", ConstLabels: labels,
			Help: "Records that arrived ahead of the state they answer (a reply before its saga's commit is visible) and were waited for.",
		}, []string{"topic"}),
	}
	reg.MustRegister(c.consumed, c.retried, c.parked, c.early)
	return c
}

// Observe is the consumer.Observer: it increments one counter, allocating
// nothing once a topic's series exist.
func (c *Consumer) Observe(topic string, o consumer.Outcome) {
	switch o {
	case consumer.RecordApplied:
		c.consumed.WithLabelValues(topic, "applied").Inc()
	case consumer.RecordDuplicate:
		c.consumed.WithLabelValues(topic, "duplicate").Inc()
	case consumer.RecordRetried:
		c.retried.WithLabelValues(topic).Inc()
	case consumer.RecordParked:
		c.parked.WithLabelValues(topic).Inc()
	case consumer.RecordEarly:
		c.early.WithLabelValues(topic).Inc()
	}
}

var lagDesc = prometheus.NewDesc(Namespace+"_consumer_lag",
	"Records of a partition this instance owns that its group has not committed yet (log end offset minus committed offset).",
	[]string{"consumer", "topic", "partition"}, nil)

// RegisterLag registers sagabox_consumer_lag{consumer,topic,partition}: for
// every partition that this client's member of group owns, read from the
// broker when scraped. Each instance reports only its own partitions, so
// the series of several instances add up to the group's lag.
func RegisterLag(reg prometheus.Registerer, group string, cl *kgo.Client) {
	adm := kadm.NewClient(cl)
	reg.MustRegister(collectorFunc(func(ch chan<- prometheus.Metric) {
		member, _ := cl.GroupMetadata()
		if member == "" {
			return // not in the group (yet)
		}
		ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
		defer cancel()
		lags, err := adm.Lag(ctx, group)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(lagDesc, err)
			return
		}
		for _, l := range lags[group].Lag.Sorted() {
			if l.Member == nil || l.Member.MemberID != member || l.Err != nil {
				continue
			}
			ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(l.Lag),
				group, l.Topic, strconv.Itoa(int(l.Partition)))
		}
	}))
}
