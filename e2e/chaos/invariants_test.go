package chaos_test

import (
	"context"
	"fmt"
	"sort"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/pkg/participant"
)

// ledger is what the three databases say, read once the system is quiet.
type ledger struct {
	orders      []orderRow
	openLimit   map[int64]int64             // customer → open limit
	allocations map[uuid.UUID]allocationRow // saga → credit allocation
	payments    map[uuid.UUID]paymentRow    // saga → payment
	parked      map[string]int              // database → parked messages
}

type orderRow struct {
	id         int64
	customerID int64
	due        int64
	status     string
	sagaID     uuid.UUID
	sagaStatus string
	// cancelStatus is the status of its order-cancellation saga ("" when
	// it has none).
	cancelStatus string
}

type allocationRow struct {
	customerID int64
	amount     int64
	status     string
}

type paymentRow struct {
	orderID int64
	amount  int64
	status  string
}

func readLedger(ctx context.Context, orderDB, customerDB, paymentDB *pgxpool.Pool) (ledger, error) {
	l := ledger{openLimit: map[int64]int64{}, allocations: map[uuid.UUID]allocationRow{},
		payments: map[uuid.UUID]paymentRow{}, parked: map[string]int{}}
	rows, _ := orderDB.Query(ctx, `SELECT o.id, o.customer_id, o.payment_due, o.status, o.saga_id, s.status, coalesce(c.status, '')
		FROM purchaseorder o JOIN sagastate s ON s.id = o.saga_id LEFT JOIN sagastate c ON c.id = o.cancel_saga_id ORDER BY o.id`)
	orders, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (orderRow, error) {
		var o orderRow
		return o, r.Scan(&o.id, &o.customerID, &o.due, &o.status, &o.sagaID, &o.sagaStatus, &o.cancelStatus)
	})
	if err != nil {
		return l, fmt.Errorf("read orders: %w", err)
	}
	l.orders = orders
	var id, amount int64
	rows, _ = customerDB.Query(ctx, `SELECT id, open_limit FROM customer`)
	if _, err := pgx.ForEachRow(rows, []any{&id, &amount}, func() error { l.openLimit[id] = amount; return nil }); err != nil {
		return l, fmt.Errorf("read customers: %w", err)
	}
	var saga uuid.UUID
	var a allocationRow
	// What the credit-approval step did for each saga (pkg/participant's
	// barrier): DONE holds record.amount of the customer's credit.
	rows, _ = customerDB.Query(ctx, `SELECT saga_id, coalesce((record->>'customerId')::bigint, 0),
		coalesce((record->>'amount')::bigint, 0), status FROM participant_step WHERE step = 'credit-approval'`)
	if _, err := pgx.ForEachRow(rows, []any{&saga, &a.customerID, &a.amount, &a.status}, func() error {
		l.allocations[saga] = a
		return nil
	}); err != nil {
		return l, fmt.Errorf("read allocations: %w", err)
	}
	var p paymentRow
	rows, _ = paymentDB.Query(ctx, `SELECT saga_id, order_id, amount, status FROM payment`)
	if _, err := pgx.ForEachRow(rows, []any{&saga, &p.orderID, &p.amount, &p.status}, func() error {
		l.payments[saga] = p
		return nil
	}); err != nil {
		return l, fmt.Errorf("read payments: %w", err)
	}
	for name, db := range map[string]*pgxpool.Pool{"orderdb": orderDB, "customerdb": customerDB, "paymentdb": paymentDB} {
		var n int
		if err := db.QueryRow(ctx, `SELECT count(*) FROM parkedmessage WHERE status = 'PARKED'`).Scan(&n); err != nil {
			return l, fmt.Errorf("count parked messages of %s: %w", name, err)
		}
		l.parked[name] = n
	}
	return l, nil
}

// String lists the unsettled orders (for failure messages).
func (l *ledger) String() string { return fmt.Sprint(l.unsettled()) }

// unsettled lists the orders (or sagas) that have not ended.
func (l ledger) unsettled() []int64 {
	var ids []int64
	for _, o := range l.orders {
		if !(o.status == "ACCEPTED" && o.sagaStatus == "SUCCEEDED") && !(o.status == "REJECTED" && o.sagaStatus == "ABORTED") &&
			!(o.status == "CANCELLED" && o.sagaStatus == "SUCCEEDED" && o.cancelStatus == "SUCCEEDED") {
			ids = append(ids, o.id)
		}
	}
	return ids
}

// violations checks the money invariants against the customers' initial
// limits.
func (l ledger) violations(initial map[int64]int64) []string {
	var v []string
	add := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }
	if ids := l.unsettled(); len(ids) > 0 {
		add("%d orders not settled: %v", len(ids), ids)
	}
	sagas := map[uuid.UUID]orderRow{}
	accepted := map[int64]int64{} // customer → sum of ACCEPTED orders
	for _, o := range l.orders {
		sagas[o.sagaID] = o
		p, paid := l.payments[o.sagaID]
		switch o.status {
		case "ACCEPTED":
			accepted[o.customerID] += o.due
			if !paid || p.status != "COMPLETED" || p.amount != o.due {
				add("ACCEPTED order %d (%d cents) has payment %+v (found %v), want one COMPLETED of its amount", o.id, o.due, p, paid)
			}
		case "REJECTED":
			if paid && p.status != "FAILED" && p.status != "REFUNDED" {
				add("REJECTED order %d has a %s payment of %d cents", o.id, p.status, p.amount)
			}
		case "CANCELLED":
			if !paid || p.status != "REFUNDED" || p.amount != o.due {
				add("CANCELLED order %d (%d cents) has payment %+v (found %v), want it REFUNDED for its amount", o.id, o.due, p, paid)
			}
			if a := l.allocations[o.sagaID]; a.status != participant.StatusUndone || a.amount != o.due {
				add("CANCELLED order %d (%d cents): its credit is %s (%d cents), want it released", o.id, o.due, a.status, a.amount)
			}
		}
		if a, ok := l.allocations[o.sagaID]; ok && a.status == participant.StatusDone && o.sagaStatus == "ABORTED" {
			add("ABORTED saga of order %d still holds %d cents of customer %d", o.id, a.amount, a.customerID)
		}
	}
	allocated := map[int64]int64{}
	for saga, a := range l.allocations {
		if _, ok := sagas[saga]; !ok {
			add("credit allocation for saga %s of no order", saga)
		}
		if a.status == participant.StatusDone {
			allocated[a.customerID] += a.amount
		}
	}
	for saga, p := range l.payments {
		if _, ok := sagas[saga]; !ok {
			add("payment %+v for saga %s of no order", p, saga)
		}
	}
	customers := make([]int64, 0, len(initial))
	for c := range initial {
		customers = append(customers, c)
	}
	sort.Slice(customers, func(i, j int) bool { return customers[i] < customers[j] })
	for _, c := range customers {
		used := initial[c] - l.openLimit[c]
		if used != accepted[c] || used != allocated[c] {
			add("customer %d: limit %d - open %d = %d, but ACCEPTED orders sum to %d and allocations to %d",
				c, initial[c], l.openLimit[c], used, accepted[c], allocated[c])
		}
	}
	for db, n := range l.parked {
		if n > 0 {
			add("%d messages parked in %s", n, db)
		}
	}
	sort.Strings(v)
	return v
}

func (l ledger) counts() (accepted, rejected, cancelled int) {
	for _, o := range l.orders {
		switch o.status {
		case "ACCEPTED":
			accepted++
		case "REJECTED":
			rejected++
		case "CANCELLED":
			cancelled++
		}
	}
	return accepted, rejected, cancelled
}
