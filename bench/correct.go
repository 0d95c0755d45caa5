package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// checkMoney is sagabox's correctness check after a run, the one DTM's runs
// get (dtmSystem.check): no order left undecided, every ACCEPTED order
// with exactly one COMPLETED payment of its amount and no other order with
// one, and the customers' credit taken equal to what the ACCEPTED orders
// hold. It returns "ok" or the problems found.
func checkMoney(ctx context.Context, s *system) (string, error) {
	read := func(db, sql string, args ...any) (map[int64]int64, error) {
		pool, err := s.db(ctx, db, 1)
		if err != nil {
			return nil, err
		}
		defer pool.Close()
		rows, _ := pool.Query(ctx, sql, args...)
		out := map[int64]int64{}
		var k, v int64
		_, err = pgx.ForEachRow(rows, []any{&k, &v}, func() error {
			out[k] += v
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("correctness check on %s: %w", db, err)
		}
		return out, nil
	}
	undecided, err := read("orderdb", `SELECT 0, count(*) FROM purchaseorder WHERE status NOT IN ('ACCEPTED', 'REJECTED')`)
	if err != nil {
		return "", err
	}
	accepted, err := read("orderdb", `SELECT id, payment_due FROM purchaseorder WHERE status = 'ACCEPTED'`)
	if err != nil {
		return "", err
	}
	payments, err := read("paymentdb", `SELECT order_id, count(*) FROM payment WHERE status = 'COMPLETED' GROUP BY order_id`)
	if err != nil {
		return "", err
	}
	paid, err := read("paymentdb", `SELECT order_id, amount FROM payment WHERE status = 'COMPLETED'`)
	if err != nil {
		return "", err
	}
	taken, err := read("customerdb", `SELECT 0, coalesce(sum(1000000000000 - open_limit), 0)::bigint FROM customer WHERE id BETWEEN $1 AND $2`,
		firstCustomer, firstCustomer+numCustomers-1)
	if err != nil {
		return "", err
	}
	var problems []string
	if n := undecided[0]; n > 0 {
		problems = append(problems, fmt.Sprintf("%d orders undecided", n))
	}
	var held int64
	wrong := 0
	for id, due := range accepted {
		held += due
		if payments[id] != 1 || paid[id] != due {
			wrong++
		}
	}
	for id := range payments {
		if _, ok := accepted[id]; !ok {
			wrong++
		}
	}
	if wrong > 0 {
		problems = append(problems, fmt.Sprintf("%d orders without exactly one payment of their amount, or paid and not accepted", wrong))
	}
	if taken[0] != held {
		problems = append(problems, fmt.Sprintf("customers gave %d cents, ACCEPTED orders hold %d", taken[0], held))
	}
	if len(problems) == 0 {
		return "ok", nil
	}
	return strings.Join(problems, "; "), nil
}
