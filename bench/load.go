package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The load's customers: many, each with a limit no order exhausts, so every
// saga runs both steps (five commits: the order, the credit answer, its
// reply handled, the payment answer, its reply handled).
const (
	firstCustomer = 100001
	numCustomers  = 1000
)

func seedCustomers(ctx context.Context, customerDB *pgxpool.Pool) error {
	_, err := customerDB.Exec(ctx, `INSERT INTO customer (id, open_limit)
		SELECT g, 1000000000000 FROM generate_series($1::bigint, $2::bigint) g ON CONFLICT (id) DO NOTHING`,
		firstCustomer, firstCustomer+numCustomers-1)
	if err != nil {
		return fmt.Errorf("seed customers: %w", err)
	}
	return nil
}

var client = &http.Client{
	Timeout:   30 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256},
}

func orderBody(r *rand.Rand) []byte {
	b, _ := json.Marshal(map[string]any{
		"customerId": firstCustomer + r.IntN(numCustomers), "itemId": 1 + r.IntN(100), "quantity": 1,
		"paymentDue": 100 + r.IntN(900), "creditCardNo": fmt.Sprintf("4111-1111-1111-%04d", r.IntN(9999)),
	})
	return b
}

func post(url string, body []byte) error {
	resp, err := client.Post(url+"/orders", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST /orders: %d", resp.StatusCode)
	}
	return nil
}

// placeAll places n orders as fast as workers concurrent clients can:
// offered load far above what the sagas can take, so a backlog builds and
// the system runs saturated.
func placeAll(ctx context.Context, url string, n, workers int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				if err := post(url, orderBody(r)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// offer places orders at a fixed rate for d, each in its own goroutine
// (open loop: a slow answer never slows the offer down).
func offer(ctx context.Context, url string, rate float64, d time.Duration) (failed int64) {
	var wg sync.WaitGroup
	var nfailed atomic.Int64
	r := rand.New(rand.NewPCG(7, 7))
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i := 0; ctx.Err() == nil; i++ {
		at := start.Add(time.Duration(i) * interval)
		if at.Sub(start) >= d {
			break
		}
		time.Sleep(time.Until(at))
		body := orderBody(r)
		wg.Go(func() {
			if err := post(url, body); err != nil && nfailed.Add(1) == 1 {
				fmt.Fprintf(os.Stderr, "bench: the first order that failed: %v\n", err)
			}
		})
	}
	wg.Wait()
	return nfailed.Load()
}

// waitTerminal waits until every saga created since from has ended.
func waitTerminal(ctx context.Context, orderDB *pgxpool.Pool, from time.Time, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var done, total int
		err := orderDB.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status IN ('SUCCEEDED','ABORTED')), count(*)
			FROM sagastate WHERE created_at >= $1`, from).Scan(&done, &total)
		if err != nil {
			return err
		}
		if done == total && total >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d sagas ended after %s", done, total, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// throughput is sagas ended per second over the sagas created since from:
// their count over the time from the first created to the last ended.
func throughput(ctx context.Context, orderDB *pgxpool.Pool, from time.Time) (float64, int, error) {
	var n int
	var secs float64
	err := orderDB.QueryRow(ctx, `SELECT count(*), extract(epoch FROM max(status_since) - min(created_at))
		FROM sagastate WHERE created_at >= $1`, from).Scan(&n, &secs)
	if err != nil {
		return 0, 0, fmt.Errorf("measure throughput: %w", err)
	}
	return float64(n) / secs, n, nil
}

// latencies returns created → ended, in milliseconds, of the sagas created
// in [from, to), sorted.
func latencies(ctx context.Context, orderDB *pgxpool.Pool, from, to time.Time) ([]float64, error) {
	rows, _ := orderDB.Query(ctx, `SELECT extract(epoch FROM status_since - created_at) * 1000
		FROM sagastate WHERE created_at >= $1 AND created_at < $2 AND status IN ('SUCCEEDED','ABORTED')`, from, to)
	ms, err := pgx.CollectRows(rows, pgx.RowTo[float64])
	if err != nil {
		return nil, fmt.Errorf("read latencies: %w", err)
	}
	slices.Sort(ms)
	return ms, nil
}

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}
