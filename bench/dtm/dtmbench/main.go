// Command dtmbench is the order saga of `make bench` on DTM: the same two
// steps as sagabox's — credit approval by a conditional UPDATE of the
// customer's open limit, then the payment inserted (a card ending in 9999
// fails, and the credit is given back) — each inside DTM's barrier, on the
// same kind of Postgres databases.
//
//	dtmbench serve -addr A -customer-db URL -payment-db URL
//	    the participants: POST /credit/approve, /credit/release,
//	    /payment/pay, /payment/refund (DTM's HTTP branch protocol)
//	dtmbench load -dtm URL -participants URL -order-db URL (-clients N -orders M | -rate R -for D)
//	    the order service's part: insert the order PENDING, submit the saga
//	    to DTM and wait for its result (WaitResult, DTM's recommended saga
//	    mode), set the order ACCEPTED or REJECTED
//
// The bench (bench/dtm.go) creates the databases and reads the results
// from them.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dtm-labs/dtm/client/dtmcli"
	_ "github.com/lib/pq"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dtmbench serve|load [flags]")
		os.Exit(2)
	}
	dtmcli.SetCurrentDBType("postgres")
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "load":
		err = load(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dtmbench:", err)
		os.Exit(1)
	}
}

// step is the body of every branch request: the order.
type step struct {
	OrderID    int64  `json:"order_id"`
	CustomerID int64  `json:"customer_id"`
	Amount     int64  `json:"amount"`
	Card       string `json:"card"`
}

func open(url string, conns int) (*sql.DB, error) {
	db, err := sql.Open("postgres", url)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	return db, db.Ping()
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:8091", "listen address")
	customerURL := fs.String("customer-db", "", "customer database URL")
	paymentURL := fs.String("payment-db", "", "payment database URL")
	_ = fs.Parse(args)
	customers, err := open(*customerURL, 16)
	if err != nil {
		return fmt.Errorf("customer db: %w", err)
	}
	payments, err := open(*paymentURL, 16)
	if err != nil {
		return fmt.Errorf("payment db: %w", err)
	}
	mux := http.NewServeMux()
	branch := func(path string, db *sql.DB, busi func(tx *sql.Tx, s step, gid string) error) {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			var s step
			bb, err := dtmcli.BarrierFromQuery(r.URL.Query())
			if err == nil {
				err = json.NewDecoder(r.Body).Decode(&s)
			}
			if err == nil {
				err = bb.CallWithDB(db, func(tx *sql.Tx) error { return busi(tx, s, bb.Gid) })
			}
			code, body := dtmcli.Result2HttpJSON(err)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_ = json.NewEncoder(w).Encode(body)
		})
	}
	branch("/credit/approve", customers, func(tx *sql.Tx, s step, _ string) error {
		res, err := tx.Exec(`UPDATE customer SET open_limit = open_limit - $2 WHERE id = $1 AND open_limit >= $2`, s.CustomerID, s.Amount)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return dtmcli.ErrFailure
		}
		return nil
	})
	branch("/credit/release", customers, func(tx *sql.Tx, s step, _ string) error {
		_, err := tx.Exec(`UPDATE customer SET open_limit = open_limit + $2 WHERE id = $1`, s.CustomerID, s.Amount)
		return err
	})
	branch("/payment/pay", payments, func(tx *sql.Tx, s step, gid string) error {
		if strings.HasSuffix(s.Card, "9999") {
			return dtmcli.ErrFailure
		}
		_, err := tx.Exec(`INSERT INTO payment (gid, order_id, customer_id, amount, card_last4, status) VALUES ($1, $2, $3, $4, $5, 'COMPLETED')`,
			gid, s.OrderID, s.CustomerID, s.Amount, s.Card[len(s.Card)-4:])
		return err
	})
	branch("/payment/refund", payments, func(tx *sql.Tx, _ step, gid string) error {
		_, err := tx.Exec(`UPDATE payment SET status = 'REFUNDED' WHERE gid = $1 AND status = 'COMPLETED'`, gid)
		return err
	})
	srv := &http.Server{Addr: *addr, Handler: mux}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() { <-ctx.Done(); _ = srv.Shutdown(context.Background()) }()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func load(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	dtm := fs.String("dtm", "http://127.0.0.1:36789/api/dtmsvr", "DTM server API")
	participants := fs.String("participants", "http://127.0.0.1:8091", "participants' base URL")
	orderURL := fs.String("order-db", "", "order database URL")
	clients := fs.Int("clients", 8, "closed loop: concurrent clients, each placing orders one after the other")
	orders := fs.Int("orders", 1000, "closed loop: orders in all")
	rate := fs.Float64("rate", 0, "open loop: orders per second (0: the closed loop)")
	length := fs.Duration("for", 20*time.Second, "open loop: how long")
	prefix := fs.String("gid-prefix", "bench", "prefix of the saga ids (unique per run)")
	_ = fs.Parse(args)
	conns := *clients
	if *rate > 0 {
		conns = 64
	}
	orderDB, err := open(*orderURL, conns)
	if err != nil {
		return fmt.Errorf("order db: %w", err)
	}
	var seq, failed atomic.Int64
	place := func(r *rand.Rand) {
		n := seq.Add(1)
		if err := placeOrder(orderDB, *dtm, *participants, fmt.Sprintf("%s-%d", *prefix, n), r); err != nil {
			if failed.Add(1) <= 3 {
				fmt.Fprintln(os.Stderr, "dtmbench: order:", err)
			}
		}
	}
	var wg sync.WaitGroup
	if *rate > 0 {
		interval := time.Duration(float64(time.Second) / *rate)
		start := time.Now()
		for i := 0; ; i++ {
			at := start.Add(time.Duration(i) * interval)
			if at.Sub(start) >= *length {
				break
			}
			time.Sleep(time.Until(at))
			r := rand.New(rand.NewPCG(uint64(i), 3))
			wg.Go(func() { place(r) })
		}
	} else {
		var next atomic.Int64
		for c := range *clients {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(c), 1))
				for next.Add(1) <= int64(*orders) {
					place(r)
				}
			})
		}
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d orders failed", n)
	}
	return nil
}

// placeOrder is the order service's part of one saga.
func placeOrder(orderDB *sql.DB, dtm, participants, gid string, r *rand.Rand) error {
	s := step{CustomerID: 100000 + int64(r.IntN(1000)), Amount: 100 + int64(r.IntN(900)),
		Card: fmt.Sprintf("4111-1111-1111-%04d", r.IntN(9999))}
	err := orderDB.QueryRow(`INSERT INTO purchaseorder (gid, customer_id, amount, card_last4, status) VALUES ($1, $2, $3, $4, 'PENDING')
		RETURNING id`, gid, s.CustomerID, s.Amount, s.Card[len(s.Card)-4:]).Scan(&s.OrderID)
	if err != nil {
		return fmt.Errorf("insert order: %w", err)
	}
	saga := dtmcli.NewSaga(dtm, gid).
		Add(participants+"/credit/approve", participants+"/credit/release", s).
		Add(participants+"/payment/pay", participants+"/payment/refund", s)
	saga.WaitResult = true
	status := "ACCEPTED"
	if err := saga.Submit(); errors.Is(err, dtmcli.ErrFailure) {
		status = "REJECTED"
	} else if err != nil {
		return fmt.Errorf("saga %s: %w", gid, err)
	}
	_, err = orderDB.Exec(`UPDATE purchaseorder SET status = $2, updated_at = now() WHERE id = $1`, s.OrderID, status)
	return err
}
