// Package shop is the example's orchestrator: it takes orders over HTTP and
// runs the stocked-order saga, a definition of three steps; pkg/saga does
// the rest.
package shop

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/contracts"
	"github.com/sagabox/sagabox/examples/inventory"
	"github.com/sagabox/sagabox/internal/platform"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/card"
	"github.com/sagabox/sagabox/pkg/saga"
	"github.com/sagabox/sagabox/pkg/saga/sagaapi"
)

// Saga is the saga type.
const Saga = "stocked-order"

// Order is an order as POST /orders takes it, and the saga's payload, what
// its steps' requests are built from. The card number in clear goes no
// further than the handler: the saga keeps it sealed for the payment
// service.
type Order struct {
	OrderID    int64  `json:"orderId"`
	CustomerID int64  `json:"customerId"`
	SKU        string `json:"sku"`
	Quantity   int64  `json:"quantity"`
	PaymentDue int64  `json:"paymentDue"` // cents
	Card       string `json:"creditCardNo,omitempty"`
	CardSealed string `json:"cardSealed,omitempty"`
}

// Definition is the stocked-order saga: the stock, then the credit, then
// the payment; a step that fails (or stays unanswered past its deadline)
// undoes the ones before it.
func Definition() saga.Definition {
	deadline := saga.Deadline{Timeout: 10 * time.Second, Retries: 2}
	payment := func(o Order) (contracts.PaymentRequest, error) {
		return contracts.PaymentRequest{OrderID: o.OrderID, CustomerID: o.CustomerID, PaymentDue: o.PaymentDue, CardSealed: o.CardSealed}, nil
	}
	return saga.Define(Saga,
		saga.Call(inventory.Reservation(), func(o Order) (inventory.ReserveRequest, error) {
			return inventory.ReserveRequest{OrderID: o.OrderID, SKU: o.SKU, Quantity: o.Quantity}, nil
		}).Deadline(deadline),
		saga.Call(contracts.CreditApproval(), func(o Order) (contracts.CreditRequest, error) {
			return contracts.CreditRequest{OrderID: o.OrderID, CustomerID: o.CustomerID, PaymentDue: o.PaymentDue}, nil
		}).Deadline(deadline),
		saga.Call(contracts.Payment(), payment).Deadline(deadline).Compensate(func(o Order) (contracts.PaymentRequest, error) {
			o.CardSealed = "" // a refund needs no card
			return payment(o)
		}),
	)
}

//go:embed *.sql
var schema embed.FS

// Service describes the shop for platform.Service.Run. It seals card
// numbers (CARD_KEYS) for the payment service.
func Service() platform.Service {
	var keys card.Keys
	return platform.Service{
		Defaults:   platform.LocalDefaults("shop", "127.0.0.1:8090"),
		Migrations: migrations.Orchestrator(schema), // pkg/saga's tables, the messaging tables, the order numbers
		Topics:     saga.ReplyTopics(Definition()),
		Settings: func(getenv func(string) string) (err error) {
			keys, err = platform.LoadCardKeys(getenv)
			return err
		},
		Build: func(d platform.Deps) (platform.Parts, error) {
			sagas, err := saga.New(saga.Config{Definitions: []saga.Definition{Definition()}, Logger: d.Log})
			if err != nil {
				return platform.Parts{}, err
			}
			r := platform.Router(d.Health)
			r.Post("/orders", shop{d.Pool, sagas, keys, d.Log}.placeOrder)
			r.Route("/admin", func(r chi.Router) {
				r.Use(platform.RequireAdmin(d.Config.AdminTokens, d.Log))
				r.Mount("/sagas", sagaapi.API{Orchestrator: sagas, DB: d.Pool, Log: d.Log,
					Actor: func(r *http.Request) string { return platform.AdminName(r.Context()) }}.Routes())
			})
			return platform.Parts{
				Handler: sagas.OnReply, Retryable: saga.IsRetryable, Routes: r,
				Tasks: []func(context.Context) error{func(ctx context.Context) error { return sagas.RunSweeper(ctx, d.Pool, time.Second) }},
			}, nil
		},
	}
}

// Placed is the answer of POST /orders: the order and the saga it started.
type Placed struct {
	OrderID int64     `json:"orderId"`
	SagaID  uuid.UUID `json:"sagaId"`
}

type shop struct {
	pool  *pgxpool.Pool
	sagas *saga.Orchestrator
	keys  card.Keys
	log   *slog.Logger
}

// placeOrder serves POST /orders.
func (s shop) placeOrder(w http.ResponseWriter, r *http.Request) {
	var in Order
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&in); err != nil {
		platform.WriteError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if in.CustomerID <= 0 || in.SKU == "" || in.Quantity <= 0 || in.PaymentDue <= 0 || card.Last4(in.Card) == "" {
		platform.WriteError(w, http.StatusBadRequest, "want customerId, sku, quantity, paymentDue and creditCardNo")
		return
	}
	placed, err := s.start(r.Context(), in)
	if err != nil {
		s.log.ErrorContext(r.Context(), "place order", "err", err)
		platform.WriteError(w, http.StatusInternalServerError, "internal error")
		return
	}
	platform.WriteJSON(w, http.StatusCreated, placed)
}

// start starts an order's saga: its number, the saga and its first request
// commit together.
func (s shop) start(ctx context.Context, o Order) (p Placed, err error) {
	p.SagaID = saga.NewID()
	if o.CardSealed, err = s.keys.Seal(o.Card, []byte(p.SagaID.String())); err != nil {
		return Placed{}, err
	}
	o.Card = ""
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT nextval('shop_order_id')`).Scan(&p.OrderID); err != nil {
			return fmt.Errorf("order number: %w", err)
		}
		o.OrderID = p.OrderID
		payload, err := json.Marshal(o)
		if err != nil {
			return fmt.Errorf("encode saga payload: %w", err)
		}
		_, err = s.sagas.Start(ctx, tx, Saga, p.SagaID, payload, time.Now())
		return err
	})
	return p, err
}
