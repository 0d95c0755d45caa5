package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The scale benchmark (`make scale`, -scale N): the system measured empty,
// then again once the rows N finished sagas leave behind are written into
// its databases — orders, sagas with four history rows each, the
// participants' step records, the payments, the journals of the last days
// — as a few weeks in production would leave them, within the default
// retentions. It prints saturation throughput, the p99 at half the empty
// system's saturation, and every admin and console read, before and after,
// with the ratios.

// scaleChunk is how many sagas one INSERT … SELECT writes.
const scaleChunk = 250_000

// scalePoint is one round of measurements.
type scalePoint struct {
	sagasPerSec float64
	p50, p99    float64 // ms, at the fixed rate
	reads       []readResult
}

type readResult struct {
	name        string
	median, max float64 // ms
}

func runScale(ctx context.Context, o options, bin string, stdout io.Writer) error {
	dataDir := filepath.Join(o.work, "data-scale")
	s, err := startSystem(ctx, bin, dataDir, "none", o.env)
	if err != nil {
		return err
	}
	defer s.stop()
	dbs, closeDBs, err := s.serviceDBs(ctx, 4)
	if err != nil {
		return err
	}
	defer closeDBs()
	if err := seedCustomers(ctx, dbs["customerdb"]); err != nil {
		return err
	}
	warm := time.Now()
	if err := placeAll(ctx, s.orderURL, 300, 8); err != nil {
		return err
	}
	if err := waitTerminal(ctx, dbs["orderdb"], warm, 300, 2*time.Minute); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "bench: scale: the empty system")
	empty, err := measurePoint(ctx, o, s, dbs["orderdb"], 0)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: scale: writing the rows of %d finished sagas\n", o.scale)
	began := time.Now()
	if err := writeHistory(ctx, dbs, o.scale); err != nil {
		return err
	}
	wrote := time.Since(began)
	// The relays still decode the WAL of the written rows (publishing
	// none): measure once they have caught up.
	if err := waitSlots(ctx, dbs["orderdb"], 30*time.Minute); err != nil {
		return err
	}
	// Weeks of history were written back to disk long ago: flush the rows
	// just written (the OS holds gigabytes of them dirty) before measuring,
	// or the write-back of the bulk load is what the latency run measures.
	if _, err := dbs["orderdb"].Exec(ctx, `CHECKPOINT`); err != nil {
		return fmt.Errorf("checkpoint after writing: %w", err)
	}
	sizes, err := databaseSizes(ctx, dbs)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "bench: scale: the system with them")
	full, err := measurePoint(ctx, o, s, dbs["orderdb"], empty.sagasPerSec/2)
	if err != nil {
		return err
	}
	reportScale(stdout, o, empty, full, wrote, sizes)
	return nil
}

// measurePoint takes the saturation throughput, the latency at rate (half
// the saturation when 0) and every read.
func measurePoint(ctx context.Context, o options, s *system, orderDB *pgxpool.Pool, rate float64) (scalePoint, error) {
	var p scalePoint
	start := time.Now()
	if err := placeAll(ctx, s.orderURL, o.orders, o.workers); err != nil {
		return p, err
	}
	if err := waitTerminal(ctx, orderDB, start, o.orders, 10*time.Minute); err != nil {
		return p, err
	}
	var err error
	if p.sagasPerSec, _, err = throughput(ctx, orderDB, start); err != nil {
		return p, err
	}
	if rate == 0 {
		rate = p.sagasPerSec / 2
	}
	var r result
	if err := latencyRun(ctx, o, s, orderDB, rate, &r); err != nil {
		return p, err
	}
	p.p50, p.p99 = r.p50, r.p99
	p.reads, err = measureReads(ctx, s, orderDB, o.reads)
	return p, err
}

// measureReads times every admin and console read, each n times in a
// row, on a quiet system.
func measureReads(ctx context.Context, s *system, orderDB *pgxpool.Pool, n int) ([]readResult, error) {
	token, err := s.adminToken()
	if err != nil {
		return nil, err
	}
	var sagaID string
	var orderID, customerID int64
	err = orderDB.QueryRow(ctx, `SELECT s.id, o.id, o.customer_id FROM sagastate s JOIN purchaseorder o ON o.saga_id = s.id
		WHERE s.status = 'SUCCEEDED' ORDER BY s.created_at LIMIT 1`).Scan(&sagaID, &orderID, &customerID)
	if err != nil {
		return nil, fmt.Errorf("pick a saga to read: %w", err)
	}
	o, c := strconv.FormatInt(orderID, 10), strconv.FormatInt(customerID, 10)
	reads := []struct{ name, url string }{
		{"order: saga stats (15m)", s.orderURL + "/admin/sagas/stats"},
		{"order: saga list", s.orderURL + "/admin/sagas"},
		{"order: stuck sagas", s.orderURL + "/admin/sagas?stuck=true"},
		{"order: aborted sagas", s.orderURL + "/admin/sagas?status=ABORTED"},
		{"order: sagas of a rare type", s.orderURL + "/admin/sagas?type=order-cancellation"},
		{"order: sagas of a customer", s.orderURL + "/admin/sagas?customer=" + c},
		{"order: sagas of an order", s.orderURL + "/admin/sagas?order=" + o},
		{"order: sagas older than 1h", s.orderURL + "/admin/sagas?older_than=1h"},
		{"order: one saga with history", s.orderURL + "/admin/sagas/" + sagaID},
		{"order: an order", s.orderURL + "/orders/" + o},
		{"order: metrics", s.orderURL + "/metrics"},
		{"order: messaging", s.orderURL + "/admin/messaging"},
		{"customer: a step record", s.customerURL + "/steps/credit-approval/" + sagaID},
		{"customer: parked", s.customerURL + "/admin/parked"},
		{"payment: an order's payments", s.paymentURL + "/payments?orderId=" + o},
		{"payment: metrics", s.paymentURL + "/metrics"},
		{"console: overview", s.console + "/"},
		{"console: saga list", s.console + "/sagas"},
		{"console: a saga", s.console + "/sagas/" + sagaID},
	}
	var out []readResult
	for _, rd := range reads {
		var ms []float64
		for range n {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, rd.url, nil)
			if err != nil {
				return nil, err
			}
			req.Header.Set("Authorization", "Bearer "+token)
			began := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", rd.name, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			ms = append(ms, float64(time.Since(began).Microseconds())/1000)
			if resp.StatusCode != http.StatusOK {
				return nil, fmt.Errorf("%s: GET %s: %d", rd.name, rd.url, resp.StatusCode)
			}
		}
		slices.Sort(ms)
		out = append(out, readResult{name: rd.name, median: percentile(ms, .5), max: ms[len(ms)-1]})
	}
	return out, nil
}

// writeHistory writes the rows of n finished sagas with sagastate out of
// the sagastate connector's publication: their changes were published when
// they happened, weeks ago in the life this stands for, and are not news
// now (pgoutput judges each change by the publication as it was when the
// change was written).
func writeHistory(ctx context.Context, dbs map[string]*pgxpool.Pool, n int) error {
	if _, err := dbs["orderdb"].Exec(ctx, `ALTER PUBLICATION order_sagastate DROP TABLE sagastate`); err != nil {
		return fmt.Errorf("take sagastate out of its publication: %w", err)
	}
	err := writeSagas(ctx, dbs, n)
	if _, addErr := dbs["orderdb"].Exec(ctx, `ALTER PUBLICATION order_sagastate ADD TABLE sagastate`); addErr != nil && err == nil {
		err = fmt.Errorf("put sagastate back into its publication: %w", addErr)
	}
	return err
}

// v7 is the SQL of a UUIDv7 (as saga.NewID and the outbox make them) of
// the row's time (the column ms: milliseconds since the epoch, 12 hex
// digits) whose random bits come from seed, an SQL text expression.
func v7(seed string) string {
	return "(ms || '7' || substr(md5(" + seed + "), 14, 3) || '8' || substr(md5(" + seed + "), 18, 15))::uuid"
}

// writeSagas writes the rows n finished sagas leave behind, as the system
// would have written them over the last six days (ids time-ordered, as
// the system makes them): 90 % accepted, 10 %
// rejected at the payment (the credit given back); the journals of the
// last three days (CONSUMED_RETENTION: older entries would be pruned).
// Ids come from the saga's number, so the three databases agree.
func writeSagas(ctx context.Context, dbs map[string]*pgxpool.Pool, n int) error {
	common := `WITH g0 AS (
			SELECT i, at, lpad(to_hex((extract(epoch FROM at) * 1000)::bigint), 12, '0') AS ms
			FROM generate_series($1::bigint, $2::bigint) i,
				LATERAL (SELECT $3::timestamptz - interval '1 hour' - (i % 518400) * interval '1 second' AS at) t),
		g AS (
			SELECT i, at, ms, ` + v7("'scale-saga-' || i") + ` AS saga, 2000000000 + i AS order_id,
				100001 + i % 1000 AS customer, 100 + i % 900 AS due, i % 10 = 0 AS rejected
			FROM g0)
		`
	statements := map[string][]string{
		"orderdb": {
			common + `INSERT INTO purchaseorder (id, customer_id, item_id, quantity, payment_due, credit_card_sealed, credit_card_last4,
					status, saga_id, created_at, updated_at)
				SELECT order_id, customer, 1 + i % 100, 1, due, 'v1.k1.c2NhbGU', '1111', CASE WHEN rejected THEN 'REJECTED' ELSE 'ACCEPTED' END,
					saga, at, at + interval '40 ms' FROM g`,
			common + `INSERT INTO sagastate (id, type, definition_version, payload, current_step, step_status, waits, status, attempt,
					deadline, status_since, version, created_at, updated_at)
				SELECT saga, 'order-placement', 1,
					jsonb_build_object('order-id', order_id, 'customer-id', customer, 'item-id', 1 + i % 100, 'quantity', 1,
						'payment-due', due, 'credit-card-sealed', 'v1.k1.c2NhbGU'),
					CASE WHEN rejected THEN 'credit-approval' ELSE 'payment' END,
					CASE WHEN rejected THEN '{"credit-approval": "COMPENSATED", "payment": "FAILED"}'::jsonb
						ELSE '{"credit-approval": "SUCCEEDED", "payment": "SUCCEEDED"}'::jsonb END,
					'{}', CASE WHEN rejected THEN 'ABORTED' ELSE 'SUCCEEDED' END, 0, NULL, at + interval '40 ms',
					CASE WHEN rejected THEN 3 ELSE 2 END, at, at + interval '40 ms' FROM g`,
			common + `INSERT INTO sagastate_history (saga_id, version, at, step, from_status, to_status, saga_status, attempt, cause,
					event_id, topic, event_type)
				SELECT saga, h.v, at + h.v * interval '10 ms', h.step, h.from_status, h.to_status, h.saga_status, 0, h.cause,
					CASE WHEN h.cause = 'reply' THEN ` + v7("'scale-reply-' || i || '-' || h.v") + ` END,
					CASE WHEN h.cause = 'reply' THEN h.step || '.response' END, CASE WHEN h.cause = 'reply' THEN 'Updated' END
				FROM g CROSS JOIN (VALUES
					(0, 'credit-approval', '', 'STARTED', 'STARTED', 'start'),
					(1, 'credit-approval', 'STARTED', 'SUCCEEDED', 'STARTED', 'reply'),
					(1, 'payment', '', 'STARTED', 'STARTED', 'reply'),
					(2, 'payment', 'STARTED', 'SUCCEEDED', 'SUCCEEDED', 'reply')) h(v, step, from_status, to_status, saga_status, cause)`,
			common + `INSERT INTO consumedmessage (consumer, event_id, consumed_at)
				SELECT 'order-service', ` + v7("'scale-reply-' || i || '-' || r") + `, at + r * interval '10 ms'
				FROM g CROSS JOIN generate_series(1, 2) r WHERE at > $3::timestamptz - interval '3 days'`,
		},
		"customerdb": {
			common + `INSERT INTO participant_step (step, saga_id, status, record, created_at, updated_at)
				SELECT 'credit-approval', saga, CASE WHEN rejected THEN 'UNDONE' ELSE 'DONE' END,
					jsonb_build_object('customerId', customer, 'orderId', order_id, 'amount', due), at, at + interval '30 ms' FROM g`,
			common + `INSERT INTO consumedmessage (consumer, event_id, consumed_at)
				SELECT 'customer-service', ` + v7("'scale-credit-' || i") + `, at FROM g WHERE at > $3::timestamptz - interval '3 days'`,
		},
		"paymentdb": {
			common + `INSERT INTO payment (saga_id, order_id, customer_id, amount, card_last4, status, created_at)
				SELECT saga, order_id, customer, due, CASE WHEN rejected THEN '9999' ELSE '1111' END,
					CASE WHEN rejected THEN 'FAILED' ELSE 'COMPLETED' END, at FROM g`,
			common + `INSERT INTO participant_step (step, saga_id, status, record, created_at, updated_at)
				SELECT 'payment', saga, CASE WHEN rejected THEN 'REFUSED' ELSE 'DONE' END,
					jsonb_build_object('orderId', order_id, 'amount', due), at, at FROM g`,
			common + `INSERT INTO consumedmessage (consumer, event_id, consumed_at)
				SELECT 'payment-service', ` + v7("'scale-payment-' || i") + `, at FROM g WHERE at > $3::timestamptz - interval '3 days'`,
		},
	}
	// One clock for every statement: a row's time makes its ids.
	written := time.Now()
	for from := 1; from <= n; from += scaleChunk {
		to := min(from+scaleChunk-1, n)
		for db, sqls := range statements {
			for _, sql := range sqls {
				if _, err := dbs[db].Exec(ctx, sql, from, to, written); err != nil {
					return fmt.Errorf("write sagas %d..%d into %s: %w", from, to, db, err)
				}
			}
		}
		fmt.Fprintf(os.Stderr, "bench: scale: %d of %d sagas written\n", to, n)
	}
	// The counters, as the transitions would have kept them.
	_, err := dbs["orderdb"].Exec(ctx, `INSERT INTO saga_count_change (type, status, n) VALUES
			('order-placement', 'SUCCEEDED', $1), ('order-placement', 'ABORTED', $2)`, n-n/10, n/10)
	if err != nil {
		return fmt.Errorf("count the written sagas: %w", err)
	}
	for name, db := range dbs {
		if _, err := db.Exec(ctx, `VACUUM ANALYZE`); err != nil {
			return fmt.Errorf("vacuum %s: %w", name, err)
		}
	}
	return nil
}

// waitSlots waits until every replication slot of the cluster has
// confirmed the WAL written so far (within a megabyte).
func waitSlots(ctx context.Context, db *pgxpool.Pool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var lag int64
		err := db.QueryRow(ctx, `SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)), 0)::bigint
			FROM pg_replication_slots`).Scan(&lag)
		if err != nil {
			return fmt.Errorf("replication lag: %w", err)
		}
		if lag < 1<<20 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the relays are %d bytes behind after %s", lag, timeout)
		}
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
	}
}

// databaseSizes returns each database's size in MB.
func databaseSizes(ctx context.Context, dbs map[string]*pgxpool.Pool) (map[string]float64, error) {
	out := map[string]float64{}
	for name, db := range dbs {
		var b int64
		if err := db.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&b); err != nil {
			return nil, err
		}
		out[name] = float64(b) / (1 << 20)
	}
	return out, nil
}

func reportScale(w io.Writer, o options, empty, full scalePoint, wrote time.Duration, sizes map[string]float64) {
	host, _ := os.Hostname()
	fmt.Fprintf(w, "sagabox scale bench, %s, %s, %d cores; %d finished sagas written in %s (orderdb %.0f MB, customerdb %.0f MB, paymentdb %.0f MB); tracing off, fsync on\n\n",
		time.Now().UTC().Format(time.RFC3339), host, numCPU(), o.scale, wrote.Round(time.Second), sizes["orderdb"], sizes["customerdb"], sizes["paymentdb"])
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tempty\twith them\tratio\t")
	fmt.Fprintf(tw, "saturation, sagas/s (%d orders, %d clients)\t%.0f\t%.0f\t%.2f\t\n", o.orders, o.workers, empty.sagasPerSec, full.sagasPerSec, full.sagasPerSec/empty.sagasPerSec)
	fmt.Fprintf(tw, "p50 ms at %.0f sagas/s\t%.1f\t%.1f\t%.2f\t\n", empty.sagasPerSec/2, empty.p50, full.p50, full.p50/empty.p50)
	fmt.Fprintf(tw, "p99 ms at %.0f sagas/s\t%.1f\t%.1f\t%.2f\t\n", empty.sagasPerSec/2, empty.p99, full.p99, full.p99/empty.p99)
	tw.Flush()
	fmt.Fprintf(w, "\nreads, median (max) ms of %d in a row\n", o.reads)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "read\tempty\twith them\t")
	for i, r := range empty.reads {
		f := full.reads[i]
		fmt.Fprintf(tw, "%s\t%.1f (%.1f)\t%.1f (%.1f)\t\n", r.name, r.median, r.max, f.median, f.max)
	}
	tw.Flush()
}
