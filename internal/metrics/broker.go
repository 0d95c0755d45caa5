package metrics

import (
	"context"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

var brokerEndDesc = prometheus.NewDesc(Namespace+"_broker_log_end_offset",
	"Offset of the next record of a partition: the records it ever received.",
	[]string{"topic", "partition"}, nil)

// RegisterBroker registers sagabox_broker_log_end_offset{topic,partition}
// for every topic of the broker cl is connected to, read when scraped.
func RegisterBroker(reg prometheus.Registerer, cl *kgo.Client) {
	adm := kadm.NewClient(cl)
	reg.MustRegister(collectorFunc(func(ch chan<- prometheus.Metric) {
		ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
		defer cancel()
		ends, err := adm.ListEndOffsets(ctx)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(brokerEndDesc, err)
			return
		}
		ends.Each(func(o kadm.ListedOffset) {
			if o.Err == nil {
				ch <- prometheus.MustNewConstMetric(brokerEndDesc, prometheus.GaugeValue, float64(o.Offset),
					o.Topic, strconv.Itoa(int(o.Partition)))
			}
		})
	}))
}
