// Package credit is the customer service's business: customers' open credit
// limits, and the credit-approval step that reserves an order's amount on
// them and gives it back.
package credit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/api"
	"github.com/sagabox/sagabox/contracts"
	"github.com/sagabox/sagabox/internal/platform"
	"github.com/sagabox/sagabox/pkg/participant"
)

// Reservation is what the step did for a saga: Amount (cents) taken from
// the customer's open limit, 0 when it was refused.
type Reservation struct {
	CustomerID int64 `json:"customerId"`
	OrderID    int64 `json:"orderId"`
	Amount     int64 `json:"amount"`
}

// Approval is the credit-approval step: a request within the customer's
// open limit takes the amount from it (approved), one over it or for an
// unknown customer is refused (rejected, not an error: nothing will make it
// fit later); the compensation gives back exactly what the saga took.
func Approval() participant.Step[contracts.CreditRequest, Reservation] {
	return participant.Step[contracts.CreditRequest, Reservation]{
		Contract: contracts.CreditApproval(),
		Do: func(ctx context.Context, tx pgx.Tx, c participant.Call[contracts.CreditRequest]) (Reservation, bool, error) {
			r := Reservation{CustomerID: c.Request.CustomerID, OrderID: c.Request.OrderID}
			if c.Request.PaymentDue <= 0 {
				return r, false, nil
			}
			// Conditional: concurrent sagas can never overdraw the limit.
			const q = `UPDATE customer SET open_limit = open_limit - $2, version = version + 1
				WHERE id = $1 AND open_limit >= $2`
			tag, err := tx.Exec(ctx, q, r.CustomerID, c.Request.PaymentDue)
			if err != nil {
				return r, false, fmt.Errorf("take %d from customer %d: %w", c.Request.PaymentDue, r.CustomerID, err)
			}
			if tag.RowsAffected() == 0 {
				return r, false, nil
			}
			r.Amount = c.Request.PaymentDue
			return r, true, nil
		},
		Undo: func(ctx context.Context, tx pgx.Tx, _ participant.Call[contracts.CreditRequest], r Reservation) error {
			const q = `UPDATE customer SET open_limit = open_limit + $2, version = version + 1 WHERE id = $1`
			if _, err := tx.Exec(ctx, q, r.CustomerID, r.Amount); err != nil {
				return fmt.Errorf("give %d back to customer %d: %w", r.Amount, r.CustomerID, err)
			}
			return nil
		},
	}
}

// Release is the credit-release step of an order's cancellation: it gives
// back what the order's placement saga reserved, exactly as that saga's
// compensation would and at most once between them (participant.Reversal).
func Release() participant.Step[contracts.ReleaseRequest, participant.Reversed] {
	return participant.Reversal(contracts.CreditRelease(), Approval(),
		func(r contracts.ReleaseRequest) (uuid.UUID, contracts.CreditRequest) {
			return r.PlacementSagaID, contracts.CreditRequest{OrderID: r.OrderID, CustomerID: r.CustomerID, PaymentDue: r.PaymentDue}
		})
}

// Routes is the customer service's HTTP API: GET /customers/{id} (the open
// limit), the step's records (participant.Routes) and /healthz.
func Routes(p *participant.Participant, pool *pgxpool.Pool, health http.Handler, log *slog.Logger) http.Handler {
	r := platform.Router(health)
	r.Get("/customers/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
		var limit int64
		if err == nil {
			err = pool.QueryRow(r.Context(), `SELECT open_limit FROM customer WHERE id = $1`, id).Scan(&limit)
		}
		switch {
		case errors.Is(err, pgx.ErrNoRows), errors.Is(err, strconv.ErrSyntax), errors.Is(err, strconv.ErrRange):
			platform.WriteError(w, http.StatusNotFound, "not found")
		case err != nil:
			log.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "err", err)
			platform.WriteError(w, http.StatusInternalServerError, "internal error")
		default:
			platform.WriteJSON(w, http.StatusOK, api.Customer{ID: id, OpenLimit: limit})
		}
	})
	r.Mount("/steps", p.Routes(pool, log))
	return r
}
