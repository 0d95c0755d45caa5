package e2e_test

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sagabox/sagabox/internal/testenv"
)

// Every retention, short, through the real relays, broker and services:
// ended sagas go with their history and orders while running ones stay;
// old journal entries and outbox rows go; step records go with the
// payments once old, young ones stay; replayed parked messages go, waiting
// ones stay. And no removal publishes anything: the topics' end offsets do
// not move (the sagastate connector skips deletes).
func TestRetentionRemovesWhatEndedAndPublishesNothing(t *testing.T) {
	t.Parallel()
	s := startSystemEnv(t, map[string]string{
		"OUTBOX_RETENTION": "2s", "KAFKA_TOPIC_RETENTION": "3s", "CONSUMED_RETENTION": "4s", "SAGA_RETENTION": "6s",
		"STEP_RECORD_RETENTION": "10s", "PARKED_RETENTION": "3s", "SAGA_PAYMENT_TIMEOUT": "5m", "ADMIN_TOKEN": adminToken,
	})
	ctx := context.Background()
	order, customer, payment := s.dbs["order"], s.dbs["customer"], s.dbs["payment"]
	n := func(db queryRower, sql string, args ...any) int {
		t.Helper()
		var n int
		if err := db.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Two parked messages: one replayed, one waiting for an operator.
	if _, err := order.Exec(ctx, `INSERT INTO parkedmessage (consumer, topic, partition, "offset", key, value, error,
			status, replayed_at, header_keys, header_values, digest)
		VALUES ('order-service', 't', 0, 1, '', '', 'x', 'REPLAYED', now(), '{}', '{}', '\x01'),
		       ('order-service', 't', 0, 2, '', '', 'x', 'PARKED', NULL, '{}', '{}', '\x02')`); err != nil {
		t.Fatal(err)
	}

	accepted := s.placeOrder(requestFile(t, "place-order.json"))
	rejected := s.placeOrder(requestFile(t, "place-invalid-order1.json"))
	s.waitSettled(accepted.OrderID, settleTimeout)
	s.waitSettled(rejected.OrderID, settleTimeout)
	ended := []string{accepted.SagaID, rejected.SagaID}
	if err := s.stack.StopService("payment"); err != nil {
		t.Fatal(err)
	}
	running := s.placeOrder(requestFile(t, "place-order.json"))
	s.awaitStep(running.SagaID, "payment", "STARTED")
	before := s.allEndOffsets()

	// The ended sagas go, with their history and orders; the running one
	// stays; nothing is published.
	testenv.Eventually(t, 30*time.Second, func() bool {
		return n(order, `SELECT count(*) FROM sagastate WHERE id = ANY($1::uuid[])`, ended) == 0
	}, "ended sagas not removed")
	for _, tc := range []struct{ what, sql string }{
		{"history", `SELECT count(*) FROM sagastate_history WHERE saga_id = ANY($1::uuid[])`},
		{"orders", `SELECT count(*) FROM purchaseorder WHERE saga_id = ANY($1::uuid[])`},
	} {
		if got := n(order, tc.sql, ended); got != 0 {
			t.Errorf("%d %s of the removed sagas left", got, tc.what)
		}
	}
	if got := n(order, `SELECT count(*) FROM sagastate s JOIN purchaseorder o ON o.saga_id = s.id WHERE s.id = $1`, running.SagaID); got != 1 {
		t.Errorf("the running saga or its order is gone")
	}
	if v := s.order(running.OrderID); v.Status != "CREATED" {
		t.Errorf("running order %+v", v)
	}
	// Counted as they are now: the running saga alone.
	if st, err := s.adminClient().SagaStats(ctx, nil); err != nil || st.Now["STARTED"] != 1 || st.Now["SUCCEEDED"] != 0 || st.Now["ABORTED"] != 0 {
		t.Errorf("stats now %v (%v): want the running saga alone", st.Now, err)
	}
	if diff := cmp.Diff(before, s.allEndOffsets()); diff != "" {
		t.Errorf("the removal of sagas published records (-before +after):\n%s", diff)
	}

	// The payment service back, the running saga ends: its payment step's
	// record is young when the old ones go.
	if err := s.stack.StartService("payment"); err != nil {
		t.Fatal(err)
	}
	s.waitHealthy("payment")
	s.waitSettled(running.OrderID, settleTimeout)
	young := running
	before = s.allEndOffsets()
	testenv.Eventually(t, 30*time.Second, func() bool {
		return n(customer, `SELECT count(*) FROM participant_step WHERE saga_id = ANY($1::uuid[])`, ended) == 0 &&
			n(payment, `SELECT count(*) FROM payment WHERE saga_id = ANY($1::uuid[])`, ended) == 0
	}, "old step records or payments not removed")
	// Its payment came after the restart: young.
	if got := n(payment, `SELECT count(*) FROM participant_step p JOIN payment USING (saga_id) WHERE saga_id = $1`, young.SagaID); got != 1 {
		t.Errorf("the young saga's payment record or its payment is gone")
	}
	for name, db := range map[string]queryRower{"order": order, "customer": customer, "payment": payment} {
		if got := n(db, `SELECT count(*) FROM consumedmessage WHERE consumed_at < now() - interval '6 seconds'`); got != 0 {
			t.Errorf("%s: %d journal entries older than the journal's retention", name, got)
		}
		if got := n(db, `SELECT count(*) FROM outboxevent WHERE created_at < now() - interval '4 seconds'`); got != 0 {
			t.Errorf("%s: %d outbox rows older than the outbox's retention", name, got)
		}
	}
	if got := n(order, `SELECT count(*) FROM parkedmessage WHERE status = 'REPLAYED'`); got != 0 {
		t.Errorf("%d replayed parked messages left", got)
	}
	if got := n(order, `SELECT count(*) FROM parkedmessage WHERE status = 'PARKED'`); got != 1 {
		t.Errorf("%d parked messages waiting, want the one", got)
	}
	if diff := cmp.Diff(before, s.allEndOffsets()); diff != "" {
		t.Errorf("the removal of step records, journals and outboxes published records (-before +after):\n%s", diff)
	}
}

type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// awaitStep waits until step of saga id is status.
func (s *system) awaitStep(id, step, status string) {
	s.t.Helper()
	testenv.Eventually(s.t, settleTimeout, func() bool {
		sg, err := s.adminClient().Saga(context.Background(), uuid.MustParse(id))
		return err == nil && string(sg.Saga.StepStatus[step]) == status
	}, "saga %s: %s never %s", id, step, status)
}

// allEndOffsets returns the end offset of every partition of every topic
// but the relays' heartbeats (which beat on their own, every ten seconds).
func (s *system) allEndOffsets() map[string]int64 {
	s.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...))
	if err != nil {
		s.t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	offsets, err := adm.ListEndOffsets(ctx, topics.Names()...)
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string]int64{}
	offsets.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && !strings.HasPrefix(o.Topic, "__debezium-heartbeat.") {
			out[o.Topic+"/"+string(rune('0'+o.Partition))] = o.Offset
		}
	})
	return maps.Clone(out)
}
