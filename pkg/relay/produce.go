package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ProducerOptions are the kgo options a relay's producer must have, to add
// after the seed brokers: the relay's partitioner (Kafka's key hash, or the
// partition a record names). kgo's defaults provide the rest of the
// contract: acks from all in-sync replicas, idempotent writes, no topic
// auto-creation. Do not add kgo.RecordDeliveryTimeout: kgo measures it from
// the record's timestamp, which table.field.event.timestamp may set in the
// past; the relay bounds delivery itself (Config.DeliveryTimeout).
func ProducerOptions() []kgo.Opt {
	return []kgo.Opt{
		kgo.RecordPartitioner(Partitioner()),
		// No linger: a record goes at once, and the records that arrive
		// while a produce request is in flight make the next batch.
		kgo.ProducerLinger(0),
	}
}

// checkProducer refuses a client that cannot keep the relay's contract.
func checkProducer(cl *kgo.Client) error {
	switch {
	case cl.OptValue(kgo.AllowAutoTopicCreation) == true:
		return errors.New("the kafka client allows topic auto-creation: the relay creates its topics itself (use ProducerOptions)")
	case cl.OptValue(kgo.DisableIdempotentWrite) == true:
		return errors.New("the kafka client disables idempotent writes")
	case cl.OptValue(kgo.RecordDeliveryTimeout) != time.Duration(0):
		return errors.New("the kafka client sets RecordDeliveryTimeout, which kgo measures from the record timestamp: use Config.DeliveryTimeout")
	}
	if _, ok := cl.OptValue(kgo.RecordPartitioner).(partitioner); !ok {
		return errors.New("the kafka client does not use relay.Partitioner (use ProducerOptions)")
	}
	return nil
}

// Partitioner returns the relay's kgo partitioner: a record the relay gives
// a partition (EventRouter's ":partition" placement, the heartbeat) goes
// there; any other record is placed by Kafka's default partitioner (the
// murmur2 hash of the key, so one key stays on one partition).
func Partitioner() kgo.Partitioner { return partitioner{kgo.StickyKeyPartitioner(nil)} }

type partitioner struct{ kgo.Partitioner }

func (p partitioner) ForTopic(topic string) kgo.TopicPartitioner {
	return topicPartitioner{p.Partitioner.ForTopic(topic)}
}

type topicPartitioner struct{ next kgo.TopicPartitioner }

type explicitPartition struct{}

func explicit(r *kgo.Record) bool {
	return r.Context != nil && r.Context.Value(explicitPartition{}) != nil
}

func (p topicPartitioner) RequiresConsistency(r *kgo.Record) bool {
	return explicit(r) || p.next.RequiresConsistency(r)
}

func (p topicPartitioner) Partition(r *kgo.Record, n int) int {
	if explicit(r) {
		return int(r.Partition)
	}
	return p.next.Partition(r, n)
}

// errBrokerLost reports that the broker acknowledged a record below an
// offset it had acknowledged before: it lost records.
var errBrokerLost = errors.New("the broker lost records")

// ensureTopic creates topic before the first record of this Run goes to it
// (an existing topic is fine) and records its ID. Called by the reading
// goroutine only.
func (rn *run) ensureTopic(ctx context.Context, topic string) error {
	if _, ok := rn.topics[topic]; ok {
		return nil
	}
	cfg := rn.r.cfg
	resp, err := rn.adm.CreateTopics(ctx, cfg.TopicPartitions, cfg.TopicReplicationFactor, cfg.TopicConfigs, topic)
	if err == nil {
		if ct, ok := resp[topic]; ok && ct.Err != nil && !errors.Is(ct.Err, kerr.TopicAlreadyExists) {
			err = ct.Err
		}
	}
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	ids, err := topicIDs(ctx, rn.r.cfg.Kafka, []string{topic})
	if err != nil {
		return err
	}
	id, ok := ids[topic]
	if !ok {
		return fmt.Errorf("describe topic %s: created, but unknown to the broker", topic)
	}
	rn.topics[topic] = id
	rn.mu.Lock()
	t := rn.ckpt.Topics[topic]
	fresh := t == nil || t.ID != id
	if fresh {
		rn.ckpt.Topics[topic] = &topicCheckpoint{ID: id, End: map[int32]int64{}}
		rn.dirty = true
	}
	rn.mu.Unlock()
	if fresh {
		// The producer may still know a deleted topic of that name (its ID,
		// its sequence numbers): forget it, so the records go to this one.
		rn.r.cfg.Kafka.PurgeTopicsFromProducing(topic)
	}
	return nil
}

// produce hands rec to Kafka. done, if not nil, runs with rn.mu held when
// Kafka answered (nil: acknowledged).
func (rn *run) produce(ctx context.Context, rec Record, done func(error)) error {
	if err := rn.ensureTopic(ctx, rec.Topic); err != nil {
		return err
	}
	kr := &kgo.Record{Topic: rec.Topic, Key: rec.Key, Value: rec.Value, Timestamp: rec.Timestamp}
	if rec.Partition >= 0 {
		kr.Partition = rec.Partition
		kr.Context = context.WithValue(context.Background(), explicitPartition{}, true)
	}
	for _, h := range rec.Headers {
		kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	span := startPublish(rn.r.cfg.TracerProvider, rn.r.cfg.Connector.Name, kr)
	rn.mu.Lock()
	if rn.inflight == 0 {
		rn.progress = time.Now()
	}
	rn.inflight++
	rn.mu.Unlock()
	rn.r.cfg.Kafka.Produce(rn.pctx, kr, func(kr *kgo.Record, err error) {
		endPublish(span, kr, err)
		rn.mu.Lock()
		rn.inflight--
		rn.progress = time.Now()
		if err != nil {
			if rn.failed == nil {
				rn.failed = fmt.Errorf("run relay %s: produce to %s: %w", rn.r.cfg.Connector.Name, kr.Topic, err)
			}
		} else {
			rn.acked(kr)
			if published := rn.r.cfg.Published; published != nil {
				published(rn.r.cfg.Connector.Name, kr.Topic)
			}
		}
		if done != nil {
			done(err)
		}
		rn.mu.Unlock()
		select {
		case rn.changed <- struct{}{}:
		default:
		}
	})
	return nil
}

// acked records an acknowledged record's offset in the checkpoint. An
// offset below one acknowledged before means the broker lost records.
// Called with rn.mu held.
func (rn *run) acked(kr *kgo.Record) {
	t := rn.ckpt.Topics[kr.Topic]
	if t == nil { // cannot happen: ensureTopic registered it
		return
	}
	if end := t.End[kr.Partition]; kr.Offset < end && kr.Topic != rn.r.cfg.Connector.HeartbeatTopic {
		if rn.failed == nil {
			rn.failed = fmt.Errorf("run relay %s: %w: %s partition %d acknowledged offset %d below %d",
				rn.r.cfg.Connector.Name, errBrokerLost, kr.Topic, kr.Partition, kr.Offset, end)
			rn.lost = true
		}
		return
	}
	t.End[kr.Partition] = kr.Offset + 1
	rn.dirty = true
}

// stalled fails the run when records are in flight and Kafka answered none
// for DeliveryTimeout (a broker that is down or unreachable): the Run ends
// and is restarted instead of waiting forever. Called with rn.mu held.
func (rn *run) stalled(now time.Time) error {
	if rn.failed == nil && rn.inflight > 0 && now.Sub(rn.progress) > rn.r.cfg.DeliveryTimeout {
		rn.failed = fmt.Errorf("run relay %s: kafka acknowledged none of %d records for %s",
			rn.r.cfg.Connector.Name, rn.inflight, rn.r.cfg.DeliveryTimeout)
	}
	return rn.failed
}

// drain waits, at most timeout, until no record is in flight; it reports
// how many still are.
func (rn *run) drain(timeout time.Duration) int {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		rn.mu.Lock()
		n := rn.inflight
		rn.mu.Unlock()
		if n == 0 {
			return 0
		}
		select {
		case <-rn.changed:
		case <-timer.C:
			return n
		}
	}
}

// run is the state of one Run, shared by the snapshot, the stream, the
// checkpoint and the produce callbacks (franz-go goroutines). Fields under
// mu are shared; the others belong to the reading goroutine. A late callback
// of a finished Run only touches its own run.
type run struct {
	r    *Relay
	id   string          // the run id (header __debezium.context.runId)
	adm  *kadm.Client    // on the caller's producer
	pctx context.Context // produce context: outlives Run's by DrainTimeout

	topics map[string]string // topics ensured this Run → ID

	mu       sync.Mutex
	ckpt     checkpoint // recorded, then updated by every acknowledgement
	dirty    bool       // acknowledgements not yet written
	writing  bool       // a checkpoint write is in progress
	lost     bool       // an acknowledgement went backwards
	inflight int
	progress time.Time // when Kafka last answered, or records started to be in flight
	failed   error
	changed  chan struct{} // signalled after each produce callback
}
