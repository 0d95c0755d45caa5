package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// LegacyCard is an order whose card number an older version stored in clear
// and migration 00006 left for sealing: its saga may still send a payment
// request.
type LegacyCard struct {
	OrderID int64
	SagaID  uuid.UUID
	Number  string
}

// NextLegacyCard locks and returns one order with a card number in clear
// that no other transaction holds (several instances seal side by side);
// false when none is left.
func NextLegacyCard(ctx context.Context, tx pgx.Tx) (LegacyCard, bool, error) {
	const q = `SELECT id, saga_id, credit_card_no FROM purchaseorder
		WHERE credit_card_no IS NOT NULL ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED`
	var c LegacyCard
	err := tx.QueryRow(ctx, q).Scan(&c.OrderID, &c.SagaID, &c.Number)
	if errors.Is(err, pgx.ErrNoRows) {
		return LegacyCard{}, false, nil
	}
	if err != nil {
		return LegacyCard{}, false, fmt.Errorf("find a card number in clear: %w", err)
	}
	return c, true, nil
}

// SealLegacyCard replaces c's number in clear by sealed, in the order row
// and in its saga's payload ("credit-card-no" becomes "credit-card-sealed").
// It is the one write of sagastate outside pkg/saga: the payload is not
// part of a transition, so the version stays; the row lock makes a
// concurrent transition wait and then build its messages from the sealed
// payload.
func SealLegacyCard(ctx context.Context, tx pgx.Tx, c LegacyCard, sealed string) error {
	const saga = `UPDATE sagastate SET payload = (payload - 'credit-card-no') || jsonb_build_object('credit-card-sealed', $2::text)
		WHERE id = $1 AND payload ? 'credit-card-no'`
	const order = `UPDATE purchaseorder SET credit_card_sealed = $2, credit_card_no = NULL WHERE id = $1`
	if _, err := tx.Exec(ctx, saga, c.SagaID, sealed); err != nil {
		return fmt.Errorf("seal the card of saga %s: %w", c.SagaID, err)
	}
	if _, err := tx.Exec(ctx, order, c.OrderID, sealed); err != nil {
		return fmt.Errorf("seal the card of order %d: %w", c.OrderID, err)
	}
	return nil
}
