// Package charge is the payment service's business: the payment step that
// charges an order's card (a card ending in 9999 is refused) and refunds it,
// and the payments it keeps.
package charge

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/api"
	"github.com/sagabox/sagabox/contracts"
	"github.com/sagabox/sagabox/internal/platform"
	"github.com/sagabox/sagabox/pkg/card"
	"github.com/sagabox/sagabox/pkg/consumer"
	"github.com/sagabox/sagabox/pkg/participant"
)

// Charged is what the step did for a saga: its payment row.
type Charged struct {
	PaymentID int64  `json:"paymentId"`
	OrderID   int64  `json:"orderId"`
	Amount    int64  `json:"amount"` // cents
	CardLast4 string `json:"cardLast4"`
}

// Payment is the payment step. A request's card is opened in memory with
// keys, never stored nor logged: only its last four characters are kept; a
// card ending in 9999 is refused (a FAILED payment), any other charged
// (COMPLETED). A request that cannot be applied — no amount, no card, a
// card that does not open (another key, another saga, tampered with) — is
// a permanent error: parked, nothing charged. The compensation refunds.
func Payment(keys card.Keys) participant.Step[contracts.PaymentRequest, Charged] {
	return participant.Step[contracts.PaymentRequest, Charged]{
		Contract: contracts.Payment(),
		Do: func(ctx context.Context, tx pgx.Tx, c participant.Call[contracts.PaymentRequest]) (Charged, bool, error) {
			req := c.Request
			if req.PaymentDue <= 0 || req.CardSealed == "" {
				return Charged{}, false, consumer.Permanent(fmt.Errorf("payment request of saga %s: payment-due %d, sealed card given %v",
					c.SagaID, req.PaymentDue, req.CardSealed != ""))
			}
			number, err := keys.Open(req.CardSealed, []byte(c.SagaID.String()))
			if err != nil {
				return Charged{}, false, consumer.Permanent(fmt.Errorf("payment request of saga %s: %w", c.SagaID, err))
			}
			p := Charged{OrderID: req.OrderID, Amount: req.PaymentDue, CardLast4: card.Last4(number)}
			status := "COMPLETED"
			if p.CardLast4 == "9999" {
				status = "FAILED"
			}
			const q = `INSERT INTO payment (saga_id, order_id, customer_id, amount, card_last4, status)
				VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`
			if err := tx.QueryRow(ctx, q, c.SagaID, req.OrderID, req.CustomerID, req.PaymentDue, p.CardLast4, status).Scan(&p.PaymentID); err != nil {
				return p, false, fmt.Errorf("insert payment of saga %s: %w", c.SagaID, err)
			}
			return p, status == "COMPLETED", nil
		},
		Undo: func(ctx context.Context, tx pgx.Tx, c participant.Call[contracts.PaymentRequest], p Charged) error {
			const q = `UPDATE payment SET status = 'REFUNDED', updated_at = now() WHERE id = $1 AND status = 'COMPLETED'`
			if _, err := tx.Exec(ctx, q, p.PaymentID); err != nil {
				return fmt.Errorf("refund payment of saga %s: %w", c.SagaID, err)
			}
			return nil
		},
		// The payments go with their step records (STEP_RECORD_RETENTION):
		// this service's ledger is the step's record.
		Forget: func(ctx context.Context, tx pgx.Tx, sagaIDs []uuid.UUID) error {
			if _, err := tx.Exec(ctx, `DELETE FROM payment WHERE saga_id = ANY($1)`, sagaIDs); err != nil {
				return fmt.Errorf("remove payments: %w", err)
			}
			return nil
		},
	}
}

// Refund is the payment-refund step of an order's cancellation: it refunds
// what the order's placement saga charged, exactly as that saga's
// compensation would and at most once between them (participant.Reversal).
// It needs no card: a refund opens none.
func Refund() participant.Step[contracts.ReleaseRequest, participant.Reversed] {
	return participant.Reversal(contracts.PaymentRefund(), Payment(card.Keys{}),
		func(r contracts.ReleaseRequest) (uuid.UUID, contracts.PaymentRequest) {
			return r.PlacementSagaID, contracts.PaymentRequest{OrderID: r.OrderID, CustomerID: r.CustomerID, PaymentDue: r.PaymentDue}
		})
}

// Routes is the payment service's HTTP API: GET /payments?orderId=N (an
// order's payments, oldest first), the step's records (participant.Routes)
// and /healthz.
func Routes(p *participant.Participant, pool *pgxpool.Pool, health http.Handler, log *slog.Logger) http.Handler {
	r := platform.Router(health)
	r.Get("/payments", func(w http.ResponseWriter, r *http.Request) {
		orderID, err := strconv.ParseInt(r.URL.Query().Get("orderId"), 10, 64)
		if err != nil || orderID <= 0 {
			platform.WriteError(w, http.StatusBadRequest, "query parameter orderId must be a positive integer")
			return
		}
		const q = `SELECT id, saga_id, order_id, customer_id, amount, card_last4, status, created_at
			FROM payment WHERE order_id = $1 ORDER BY id`
		rows, _ := pool.Query(r.Context(), q, orderID)
		ps, err := pgx.CollectRows(rows, pgx.RowToStructByPos[api.Payment])
		if err != nil {
			log.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "err", err)
			platform.WriteError(w, http.StatusInternalServerError, "internal error")
			return
		}
		platform.WriteJSON(w, http.StatusOK, append(make([]api.Payment, 0, len(ps)), ps...))
	})
	r.Mount("/steps", p.Routes(pool, log))
	return r
}
