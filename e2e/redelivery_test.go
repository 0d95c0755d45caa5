package e2e_test

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sagabox/sagabox/internal/testenv"
)

var sagaTopics = []string{"credit-approval.request", "credit-approval.response", "payment.request", "payment.response"}

// duplicate copies every record of the saga topics back onto its own
// partition once, headers included, so that each message is delivered twice
// — the second time after, or racing with, the first. It returns a function
// reporting how many copies were produced.
func (s *system) duplicate(ctx context.Context) func() int {
	s.t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(s.brokers...),
		kgo.ConsumeTopics(sagaTopics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AllowAutoTopicCreation(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)
	if err != nil {
		s.t.Fatal(err)
	}
	copied := make(chan int, 1)
	copied <- 0
	go func() {
		defer cl.Close()
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				if header(r, "test-copy") != "" {
					return
				}
				dup := &kgo.Record{
					Topic: r.Topic, Partition: r.Partition, Key: r.Key, Value: r.Value,
					Headers: append(append([]kgo.RecordHeader(nil), r.Headers...), kgo.RecordHeader{Key: "test-copy", Value: []byte("1")}),
				}
				if err := cl.ProduceSync(ctx, dup).FirstErr(); err == nil {
					copied <- <-copied + 1
				}
			})
		}
	}()
	return func() int { n := <-copied; copied <- n; return n }
}

// caughtUp reports whether every group has committed offsets at the end of
// every partition of the saga topics.
func (s *system) caughtUp(ctx context.Context) bool {
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...))
	if err != nil {
		return false
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	lags, err := adm.Lag(ctx, "order-service", "customer-service", "payment-service")
	if err != nil {
		return false
	}
	for _, l := range lags {
		if l.Error() != nil || l.Lag.Total() != 0 {
			return false
		}
	}
	return true
}

// 5. Every message delivered twice: the end state is the same as with one
// delivery, and nothing is applied twice.
func TestEveryMessageDeliveredTwice(t *testing.T) {
	t.Parallel()
	s := startSystem(t, options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	copies := s.duplicate(ctx)

	ok := s.placeOrder(requestFile(t, "place-order.json"))
	refused := s.placeOrder(requestFile(t, "place-invalid-order1.json"))
	vOK := s.waitSettled(ok.OrderID, settleTimeout)
	vRefused := s.waitSettled(refused.OrderID, settleTimeout)

	// 2 requests + 2 replies for the good order; 3 requests + 3 replies for
	// the refused one (credit, payment, credit CANCEL).
	const messages = 10
	testenv.Eventually(t, settleTimeout, func() bool { return copies() == messages && s.caughtUp(ctx) },
		"duplicates not all consumed: %d copies", copies())

	if vOK.Status != "ACCEPTED" || vRefused.Status != "REJECTED" {
		t.Fatalf("orders settled %s and %s", vOK.Status, vRefused.Status)
	}
	// Nothing moved after the duplicates: same versions, same money.
	if v := s.order(ok.OrderID); v.Saga.Version != 2 || v.Status != "ACCEPTED" {
		t.Errorf("accepted order after duplicates: %s version %d, want version 2", v.Status, v.Saga.Version)
	}
	if v := s.order(refused.OrderID); v.Saga.Version != 3 || v.Status != "REJECTED" {
		t.Errorf("rejected order after duplicates: %s version %d, want version 3", v.Status, v.Saga.Version)
	}
	if got := s.openLimit(customer456); got != initialLimit-4999 {
		t.Errorf("openLimit = %d, want %d (one allocation, one released)", got, initialLimit-4999)
	}
	if ps := s.payments(ok.OrderID); len(ps) != 1 || ps[0].Status != "COMPLETED" {
		t.Errorf("payments of accepted order = %+v", ps)
	}
	if ps := s.payments(refused.OrderID); len(ps) != 1 || ps[0].Status != "FAILED" {
		t.Errorf("payments of refused order = %+v", ps)
	}
	// Each service wrote exactly its replies once and journaled each message once.
	for svc, want := range map[string]struct{ outbox, consumed int }{
		"order": {5, 5}, "customer": {3, 3}, "payment": {2, 2},
	} {
		var outbox, consumed int
		db := s.dbs[svc]
		if err := db.QueryRow(ctx, `SELECT (SELECT count(*) FROM outboxevent), (SELECT count(*) FROM consumedmessage)`).Scan(&outbox, &consumed); err != nil {
			t.Fatal(err)
		}
		if outbox != want.outbox || consumed != want.consumed {
			t.Errorf("%s: %d outbox rows, %d consumed; want %d and %d", svc, outbox, consumed, want.outbox, want.consumed)
		}
	}
}
