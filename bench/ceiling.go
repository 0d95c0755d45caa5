package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ceiling measures the commit ceiling of the cluster for the transaction a
// saga step commits: one business row and one outbox row (the outbox table
// as the services have it), in a database of its own on the same cluster.
// It tries several concurrencies, each for d, and returns the best.
func ceiling(ctx context.Context, s *system, d time.Duration) (tps float64, clients int, err error) {
	admin, err := s.db(ctx, "postgres", 2)
	if err != nil {
		return 0, 0, err
	}
	defer admin.Close()
	if _, err := admin.Exec(ctx, `DROP DATABASE IF EXISTS benchceiling`); err != nil {
		return 0, 0, err
	}
	if _, err := admin.Exec(ctx, `CREATE DATABASE benchceiling`); err != nil {
		return 0, 0, err
	}
	pool, err := s.db(ctx, "benchceiling", 64)
	if err != nil {
		return 0, 0, err
	}
	defer pool.Close()
	_, err = pool.Exec(ctx, `
		CREATE TABLE business (id bigserial PRIMARY KEY, customer_id bigint NOT NULL, amount bigint NOT NULL,
			status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
		CREATE TABLE outboxevent (id uuid PRIMARY KEY, aggregatetype text NOT NULL, aggregateid text NOT NULL,
			type text NOT NULL, payload jsonb NOT NULL, traceparent text, tracestate text,
			created_at timestamptz NOT NULL DEFAULT now());
		CREATE INDEX outboxevent_created_at_idx ON outboxevent (created_at);`)
	if err != nil {
		return 0, 0, fmt.Errorf("create ceiling tables: %w", err)
	}
	for _, n := range []int{1, 4, 8, 16, 32} {
		t, err := commitLoop(ctx, pool, n, d)
		if err != nil {
			return 0, 0, err
		}
		if t > tps {
			tps, clients = t, n
		}
	}
	return tps, clients, nil
}

func commitLoop(ctx context.Context, pool *pgxpool.Pool, clients int, d time.Duration) (float64, error) {
	const payload = `{"order-id": 123456, "customer-id": 100001, "payment-due": 4999, "credit-card-no": "4111-1111-1111-1111", "type": "REQUEST"}`
	var n atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	end := time.Now().Add(d)
	for range clients {
		wg.Go(func() {
			for time.Now().Before(end) {
				err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, `INSERT INTO business (customer_id, amount, status) VALUES ($1, $2, 'CREATED')`, 100001, 4999); err != nil {
						return err
					}
					_, err := tx.Exec(ctx, `INSERT INTO outboxevent (id, aggregatetype, aggregateid, type, payload, traceparent)
						VALUES ($1, 'credit-approval', $2, 'REQUEST', $3, '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')`,
						uuid.New(), uuid.NewString(), payload)
					return err
				})
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return 0, fmt.Errorf("ceiling loop: %w", err)
	}
	return float64(n.Load()) / d.Seconds(), nil
}
