package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// hopNames are the four messages of an order saga, in the order they
// travel. Each hop is measured from the transaction that wrote the message
// to the transaction that applied it (both the database's transaction
// start): commit, WAL, relay, broker, fetch and the consumer's queue.
var hopNames = []string{"order → customer", "customer → order", "order → payment", "payment → order"}

// hopLatency is one hop's median and p99 in milliseconds.
type hopLatency struct {
	name     string
	p50, p99 float64
}

// hops measures each message's way for the order-placement sagas created in
// [from, to) that took both steps, from the timestamps the three databases
// keep: the saga's start and its history (orderdb), the step records of the
// customer and the payment service.
func hops(ctx context.Context, s *system, from, to time.Time) ([]hopLatency, error) {
	type times struct{ start, credit, creditReply, payment, end time.Time }
	sagas := map[uuid.UUID]*times{}
	orderDB, err := s.db(ctx, "orderdb", 1)
	if err != nil {
		return nil, err
	}
	defer orderDB.Close()
	rows, _ := orderDB.Query(ctx, `SELECT s.id, s.created_at, c.at, s.status_since
		FROM sagastate s JOIN sagastate_history c ON c.saga_id = s.id AND c.step = 'credit-approval' AND c.to_status = 'SUCCEEDED'
		WHERE s.type = 'order-placement' AND s.created_at >= $1 AND s.created_at < $2 AND s.current_step = 'payment'
			AND s.status IN ('SUCCEEDED', 'ABORTED')`, from, to)
	var (
		id uuid.UUID
		t  times
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &t.start, &t.creditReply, &t.end}, func() error {
		v := t
		sagas[id] = &v
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read the sagas' times: %w", err)
	}
	for _, p := range []struct {
		db, step string
		set      func(*times, time.Time)
	}{
		{"customerdb", "credit-approval", func(t *times, at time.Time) { t.credit = at }},
		{"paymentdb", "payment", func(t *times, at time.Time) { t.payment = at }},
	} {
		db, err := s.db(ctx, p.db, 1)
		if err != nil {
			return nil, err
		}
		rows, _ := db.Query(ctx, `SELECT saga_id, created_at FROM participant_step WHERE step = $1 AND created_at >= $2`, p.step, from)
		var at time.Time
		_, err = pgx.ForEachRow(rows, []any{&id, &at}, func() error {
			if t := sagas[id]; t != nil {
				p.set(t, at)
			}
			return nil
		})
		db.Close()
		if err != nil {
			return nil, fmt.Errorf("read the %s step times: %w", p.step, err)
		}
	}
	ms := make([][]float64, len(hopNames))
	for _, t := range sagas {
		if t.credit.IsZero() || t.payment.IsZero() {
			continue
		}
		for i, d := range []time.Duration{t.credit.Sub(t.start), t.creditReply.Sub(t.credit), t.payment.Sub(t.creditReply), t.end.Sub(t.payment)} {
			ms[i] = append(ms[i], float64(d)/float64(time.Millisecond))
		}
	}
	out := make([]hopLatency, len(hopNames))
	for i, name := range hopNames {
		slices.Sort(ms[i])
		out[i] = hopLatency{name: name, p50: percentile(ms[i], .5), p99: percentile(ms[i], .99)}
	}
	return out, nil
}
