package app

import (
	"errors"

	"github.com/sagabox/sagabox/contracts"
	"github.com/sagabox/sagabox/pkg/saga"
)

// PlacementSaga is the saga of placing an order: reserve the customer's
// credit, then take the payment.
const PlacementSaga = "order-placement"

// Placement is the saga payload of an order-placement saga: what its steps'
// requests are built from (its JSON is debezium-examples/saga's payload,
// but for the card, which is sealed, and the item, which a step of a later
// version may need).
type Placement struct {
	OrderID    int64 `json:"order-id"`
	CustomerID int64 `json:"customer-id"`
	ItemID     int64 `json:"item-id,omitempty"`
	Quantity   int   `json:"quantity,omitempty"`
	PaymentDue int64 `json:"payment-due"` // cents
	// CardSealed is the card number sealed with pkg/card for the saga id;
	// only the payment request carries it.
	CardSealed string `json:"credit-card-sealed,omitempty"`
}

// PlacementDefinition is the order-placement saga with the deadline policy
// of s (WithDeadlines).
func PlacementDefinition(s Settings) saga.Definition {
	return s.WithDeadlines(saga.Define(PlacementSaga,
		saga.Call(contracts.CreditApproval(), creditRequest),
		saga.Call(contracts.Payment(), paymentRequest).Compensate(paymentCancel),
	))
}

func creditRequest(p Placement) (contracts.CreditRequest, error) {
	return contracts.CreditRequest{OrderID: p.OrderID, CustomerID: p.CustomerID, PaymentDue: p.PaymentDue}, nil
}

// errNoSealedCard reports a saga payload without a sealed card where the
// payment request needs one: a payload an older version wrote with the
// number in clear, which the order service seals when it starts
// (SealLegacyCards). Transient: the message that led here is retried.
var errNoSealedCard = errors.New("saga payload has no sealed card number")

func paymentRequest(p Placement) (contracts.PaymentRequest, error) {
	if p.CardSealed == "" {
		return contracts.PaymentRequest{}, errNoSealedCard
	}
	return contracts.PaymentRequest{OrderID: p.OrderID, CustomerID: p.CustomerID, PaymentDue: p.PaymentDue, CardSealed: p.CardSealed}, nil
}

// paymentCancel is the refund: the payment without the card, which the
// payment service has no use for.
func paymentCancel(p Placement) (contracts.PaymentRequest, error) {
	return contracts.PaymentRequest{OrderID: p.OrderID, CustomerID: p.CustomerID, PaymentDue: p.PaymentDue}, nil
}
