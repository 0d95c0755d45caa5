package consumer

import (
	"context"
	"log/slog"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// offsetCheck decides, when partitions are assigned, whether their
// committed offsets can be trusted. Two ways a broker can lose data under a
// group whose commits survived:
//
//   - the log is shorter than the committed offset (records lost);
//   - the topic was deleted and created again under the same name — what a
//     broker that lost its topic list does. Such offsets point into a log
//     they were never about: below them may be records this group never saw
//     (say, ones the relay re-published from the outbox). Offsets alone
//     cannot tell, so every commit carries the topic's id as its metadata.
//
// An untrusted offset (beyond the log end, stamped with another topic id,
// or with none: a commit of an older version) is replaced by the earliest
// offset; the journal skips what was applied before.
type offsetCheck struct {
	mu    sync.Mutex
	ids   map[string]string         // topic → id, as of the last assignment
	ends  map[topicPartition]int64  // log end offsets, as of the last assignment
	reset map[topicPartition]string // partitions to consume from the start → why
}

// learn fetches the ids and end offsets of the assigned topics. Called on
// assignment, before the committed offsets are fetched.
func (t *offsetCheck) learn(ctx context.Context, cl *kgo.Client, assigned map[string][]int32, log *slog.Logger) {
	topics := make([]string, 0, len(assigned))
	for topic := range assigned {
		topics = append(topics, topic)
	}
	if len(topics) == 0 {
		return
	}
	adm := kadm.NewClient(cl)
	md, err := adm.Metadata(ctx, topics...)
	if err != nil {
		// Without ids nothing is compared: offsets are used as committed
		// (a fetch beyond the log end still resets, see fetchError).
		log.WarnContext(ctx, "look up topic ids failed; committed offsets not checked", "err", err)
		return
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		log.WarnContext(ctx, "look up end offsets failed; committed offsets not checked against them", "err", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for name, d := range md.Topics {
		if d.Err == nil && d.ID != (kadm.TopicID{}) {
			t.ids[name] = d.ID.String()
		}
	}
	clear(t.ends)
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			t.ends[topicPartition{o.Topic, o.Partition}] = o.Offset
		}
	})
}

// offsetsFetched compares the metadata of every committed offset with the
// topic's current id.
func (t *offsetCheck) offsetsFetched(resp *kmsg.OffsetFetchResponse) {
	t.mu.Lock()
	defer t.mu.Unlock()
	check := func(topic, id string, p kmsg.OffsetFetchResponseTopicPartition) {
		if topic == "" || id == "" || p.Offset < 0 || p.ErrorCode != 0 {
			return // no commit, or nothing to compare with
		}
		end, knownEnd := t.ends[topicPartition{topic, p.Partition}]
		switch meta := deref(p.Metadata); {
		case knownEnd && p.Offset > end:
			t.reset[topicPartition{topic, p.Partition}] = "committed offset is beyond the end of the log"
		case meta == "":
			t.reset[topicPartition{topic, p.Partition}] = "committed offset carries no topic id"
		case meta != id:
			t.reset[topicPartition{topic, p.Partition}] = "topic was created again since the offset was committed"
		}
	}
	for _, topic := range resp.Topics {
		for _, p := range topic.Partitions {
			check(topic.Topic, t.ids[topic.Topic], p)
		}
	}
	for _, g := range resp.Groups {
		for _, topic := range g.Topics {
			name, id := topic.Topic, t.ids[topic.Topic]
			if topic.TopicID != ([16]byte{}) { // v10+: the offset's topic by id
				id = kadm.TopicID(topic.TopicID).String()
				name = t.nameOf(id)
			}
			for _, p := range topic.Partitions {
				check(name, id, kmsg.OffsetFetchResponseTopicPartition{
					Partition: p.Partition, Offset: p.Offset, Metadata: p.Metadata, ErrorCode: p.ErrorCode,
				})
			}
		}
	}
}

// nameOf returns the name of the topic with id, "" if unknown. Called with
// mu held.
func (t *offsetCheck) nameOf(id string) string {
	for name, tid := range t.ids {
		if tid == id {
			return name
		}
	}
	return ""
}

// adjust replaces the offsets offsetsFetched flagged with the earliest one.
func (t *offsetCheck) adjust(offsets map[string]map[int32]kgo.Offset) (changed map[topicPartition]string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for tp, why := range t.reset {
		if ps, ok := offsets[tp.topic]; ok {
			if _, ok := ps[tp.partition]; ok {
				ps[tp.partition] = kgo.NewOffset().AtStart()
				if changed == nil {
					changed = map[topicPartition]string{}
				}
				changed[tp] = why
			}
		}
	}
	clear(t.reset)
	return changed
}

// stamp sets the metadata of every committed partition to its topic's id.
func (t *offsetCheck) stamp(req *kmsg.OffsetCommitRequest) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range req.Topics {
		topic := &req.Topics[i]
		id, ok := t.ids[topic.Topic]
		if !ok && topic.TopicID != ([16]byte{}) {
			id, ok = kadm.TopicID(topic.TopicID).String(), true
		}
		if !ok {
			continue
		}
		for j := range topic.Partitions {
			topic.Partitions[j].Metadata = &id
		}
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (c *Consumer) offsetsFetched(_ context.Context, _ *kgo.Client, resp *kmsg.OffsetFetchResponse) error {
	c.offsets.offsetsFetched(resp)
	return nil
}

func (c *Consumer) adjustOffsets(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	for tp, why := range c.offsets.adjust(offsets) {
		c.log.WarnContext(ctx, "committed offset not trusted; consuming the partition again from the earliest offset (the journal skips what was applied)",
			"topic", tp.topic, "partition", tp.partition, "reason", why)
	}
	return offsets, nil
}
