package metrics

import (
	"context"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sagabox/sagabox/pkg/outbox"
)

// Relay counts what the relay publishes and reads its replication slots
// when scraped.
type Relay struct {
	published *prometheus.CounterVec
}

var (
	relayLagDesc = prometheus.NewDesc(Namespace+"_relay_lag_bytes",
		"WAL the relay has not confirmed yet: pg_current_wal_lsn() minus the slot's confirmed_flush_lsn.",
		[]string{"connector", "slot"}, nil)
	relayRetainedDesc = prometheus.NewDesc(Namespace+"_relay_slot_retained_wal_bytes",
		"WAL the server keeps for the slot: pg_current_wal_lsn() minus its restart_lsn.",
		[]string{"connector", "slot"}, nil)
	relaySlotActiveDesc = prometheus.NewDesc(Namespace+"_relay_slot_active",
		"1 when a walsender reads the slot (the relay is streaming), else 0.",
		[]string{"connector", "slot"}, nil)
)

// NewRelay registers on reg sagabox_relay_events_published_total
// {connector,topic} (records Kafka acknowledged; Published feeds it).
func NewRelay(reg prometheus.Registerer) *Relay {
	r := &Relay{published: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "relay_events_published_total",
		Help: "Records the relay published and Kafka acknowledged (re-sends after a restart count again).",
	}, []string{"connector", "topic"})}
	reg.MustRegister(r.published)
	return r
}

// Published is relay.Config.Published.
func (r *Relay) Published(connector, topic string) {
	r.published.WithLabelValues(connector, topic).Inc()
}

// SlotSource is one connector's replication slot and the database it is in.
type SlotSource struct {
	Connector string
	Slot      string
	// ConnString is the connector's database (any role may read
	// pg_replication_slots).
	ConnString string
}

// RegisterSlots registers, read when scraped from each source's database:
//
//	sagabox_relay_lag_bytes{connector,slot}
//	sagabox_relay_slot_retained_wal_bytes{connector,slot}
//	sagabox_relay_slot_active{connector,slot}
//
// It opens a one-connection pool per database on first use; the returned
// function closes them.
func RegisterSlots(reg prometheus.Registerer, sources []SlotSource) (closePools func()) {
	var (
		mu    sync.Mutex
		pools = map[string]*pgxpool.Pool{}
	)
	pool := func(connString string) (*pgxpool.Pool, error) {
		mu.Lock()
		defer mu.Unlock()
		if p, ok := pools[connString]; ok {
			return p, nil
		}
		cfg, err := pgxpool.ParseConfig(connString)
		if err != nil {
			return nil, err
		}
		cfg.MaxConns = 1
		p, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			return nil, err
		}
		pools[connString] = p
		return p, nil
	}
	reg.MustRegister(collectorFunc(func(ch chan<- prometheus.Metric) {
		ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
		defer cancel()
		for _, src := range sources {
			p, err := pool(src.ConnString)
			if err != nil {
				ch <- prometheus.NewInvalidMetric(relayLagDesc, err)
				continue
			}
			slots, err := outbox.Slots(ctx, p)
			if err != nil {
				ch <- prometheus.NewInvalidMetric(relayLagDesc, err)
				continue
			}
			for _, s := range slots {
				if s.Name != src.Slot {
					continue
				}
				active := 0.0
				if s.Active {
					active = 1
				}
				ch <- prometheus.MustNewConstMetric(relayLagDesc, prometheus.GaugeValue, float64(s.LagBytes), src.Connector, s.Name)
				ch <- prometheus.MustNewConstMetric(relayRetainedDesc, prometheus.GaugeValue, float64(s.RetainedBytes), src.Connector, s.Name)
				ch <- prometheus.MustNewConstMetric(relaySlotActiveDesc, prometheus.GaugeValue, active, src.Connector, s.Name)
			}
		}
	}))
	return func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range pools {
			p.Close()
		}
	}
}
