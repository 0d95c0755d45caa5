package relay_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/pkg/outbox"
	"github.com/sagabox/sagabox/pkg/relay"
)

// TestRelayRepublishesWhatTheBrokerLost: the broker is replaced by an empty
// one on the same address (a broker whose data directory was lost) while
// the database keeps its outbox rows. The relay, restarted, finds its
// checkpointed topics gone, re-publishes the outbox, logs it once, and a
// consumer of the new broker finds every id; later rows are streamed.
func TestRelayRepublishesWhatTheBrokerLost(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	slot := f.slot(t)
	c := loadConnector(t, "order-outbox")
	var events []outbox.Event
	for i := range 30 {
		e := event([]string{"credit-approval", "payment"}[i%2], fmt.Sprintf("saga-%d", i%5), "REQUEST")
		events = append(events, e)
	}
	r := f.newRelay(t, c, slot)
	stop := start(t, r)
	for _, e := range events {
		write(t, ctx, f.pool, e)
	}
	col := f.consume(t, "credit-approval.request", "payment.request")
	testenv.Eventually(t, 20*time.Second, func() bool { return col.has(events...) }, "delivered to the first broker")
	testenv.Eventually(t, 10*time.Second, func() bool {
		return sum(f.checkpointEnds(t, slot, "credit-approval.request"))+sum(f.checkpointEnds(t, slot, "payment.request")) == 30
	}, "checkpoint records the 30 acknowledged records")
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	f.kafka.Close()
	f.startBroker(t) // same port, empty data directory
	r2 := f.newRelay(t, c, slot)
	start(t, r2)
	col2 := f.consume(t, "credit-approval.request", "payment.request")
	testenv.Eventually(t, 30*time.Second, func() bool { return col2.has(events...) }, "every id re-published to the new broker")
	after := event("credit-approval", "saga-after", "REQUEST")
	write(t, ctx, f.pool, after)
	testenv.Eventually(t, 20*time.Second, func() bool { return col2.has(after) }, "streaming goes on")

	lines := f.logs.lines("broker lost records: tables re-published")
	if len(lines) != 1 || !strings.Contains(lines[0], "rows=30") ||
		!strings.Contains(lines[0], "credit-approval.request") || !strings.Contains(lines[0], "payment.request") {
		t.Errorf("re-publish log lines: %q, want one naming both topics and rows=30", lines)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		return sum(f.checkpointEnds(t, slot, "credit-approval.request"))+sum(f.checkpointEnds(t, slot, "payment.request")) >= 31
	}, "checkpoint records the new broker's offsets")
}

// TestRelayRepublishesADeletedTopic: a topic deleted while the relay runs
// makes its next produce fail (the relay never auto-creates); the
// supervisor restarts it, the new Run finds the topic missing, re-creates it
// and re-publishes the outbox, so a consumer finds every id.
func TestRelayRepublishesADeletedTopic(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	c := loadConnector(t, "order-outbox")
	c.SlotName = f.slot(t)
	sup, err := relay.NewSupervisor(relay.SupervisorConfig{
		Connectors:   []relay.Connector{c},
		ConnString:   func(relay.Connector) string { return f.dbURL },
		Brokers:      []string{f.broker},
		ProducerOpts: []kgo.Opt{kgo.MetadataMinAge(100 * time.Millisecond), kgo.MetadataMaxAge(time.Second)},
		Logger:       f.logger(t),
		Relay:        relay.Config{StandbyTimeout: time.Second, DeliveryTimeout: 2 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sup.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		sup.Close()
	})
	var events []outbox.Event
	for i := range 10 {
		e := event("credit-approval", fmt.Sprintf("saga-%d", i%3), "REQUEST")
		events = append(events, e)
		write(t, ctx, f.pool, e)
	}
	col := f.consume(t, "credit-approval.request")
	testenv.Eventually(t, 20*time.Second, func() bool { return col.has(events...) }, "first delivery")
	testenv.Eventually(t, 10*time.Second, func() bool { return sum(f.checkpointEnds(t, c.SlotName, "credit-approval.request")) == 10 },
		"checkpointed")

	adm := kadm.NewClient(f.producer(t))
	if _, err := adm.DeleteTopic(ctx, "credit-approval.request"); err != nil {
		t.Fatal(err)
	}
	late := event("credit-approval", "saga-late", "REQUEST")
	write(t, ctx, f.pool, late)
	col2 := f.consume(t, "credit-approval.request")
	testenv.Eventually(t, 60*time.Second, func() bool { return col2.has(append(events, late)...) },
		"every id back on the re-created topic")
	if got := f.logs.lines("broker lost records: tables re-published", "rows=11"); len(got) == 0 {
		t.Errorf("no re-publish log line with rows=11:\n%s", f.logs.String())
	}
}
