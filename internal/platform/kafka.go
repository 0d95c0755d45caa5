package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TopicPartitions is the partition count of the topics the system creates.
// Records are keyed by saga id, so a saga's messages stay on one partition
// whatever the count; it bounds how many consumer instances share a topic.
const TopicPartitions = 4

// EnsureTopics creates the topics that do not exist yet, with
// TopicPartitions partitions, the broker's default replication factor and
// retention.ms of retention (the broker's default when 0).
// Topics are created explicitly, never left to auto-creation: a broker
// records an explicitly created topic at once, whereas the embedded broker
// writes auto-created topics down only on a clean shutdown and forgets them
// when it is killed. Safe to call concurrently from several processes.
func EnsureTopics(ctx context.Context, cl *kgo.Client, retention time.Duration, topics ...string) error {
	resp, err := kadm.NewClient(cl).CreateTopics(ctx, TopicPartitions, -1, TopicConfigs(retention), topics...)
	if err != nil {
		return fmt.Errorf("create topics %v: %w", topics, err)
	}
	var errs []error
	for _, t := range resp.Sorted() {
		if t.Err != nil && !errors.Is(t.Err, kerr.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("create topic %s: %w", t.Topic, t.Err))
		}
	}
	return errors.Join(errs...)
}

// AwaitTopics calls EnsureTopics until it succeeds (the broker may not be up
// yet, or may be restarting) or ctx ends, logging the first failure and then
// every tenth.
func AwaitTopics(ctx context.Context, cl *kgo.Client, log *slog.Logger, retention time.Duration, topics ...string) error {
	for attempt := 1; ; attempt++ {
		err := EnsureTopics(ctx, cl, retention, topics...)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt%10 == 1 {
			log.WarnContext(ctx, "kafka topics not ready, retrying", "attempt", attempt, "topics", topics, "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// TopicConfigs are the configs of a topic created with retention (nil
// when 0: the broker's default).
func TopicConfigs(retention time.Duration) map[string]*string {
	if retention <= 0 {
		return nil
	}
	ms := strconv.FormatInt(retention.Milliseconds(), 10)
	return map[string]*string{"retention.ms": &ms}
}
