// Package contracts is the contract between this system's services, defined
// once and imported by both sides: the steps the order service calls and
// the customer and payment services serve — credit-approval and payment
// to place an order, credit-release and payment-refund to cancel one —
// their request payloads and their reply statuses. The wire format is debezium-examples/saga's,
// except that the card number never travels in clear.
package contracts

import (
	"github.com/google/uuid"

	"github.com/sagabox/sagabox/pkg/contract"
)

// CreditApproval is the step in which the customer service reserves the
// order's amount on the customer's open credit limit.
func CreditApproval() contract.Step[CreditRequest] {
	return contract.Step[CreditRequest]{Name: "credit-approval", ReplyType: "CreditUpdated",
		Succeeded: "APPROVED", Failed: "REJECTED", Cancelled: "CANCELLED"}
}

// CreditRequest asks for (REQUEST) or gives back (CANCEL) a saga's credit.
type CreditRequest struct {
	OrderID    int64 `json:"order-id"`
	CustomerID int64 `json:"customer-id"`
	PaymentDue int64 `json:"payment-due"` // cents
}

// Payment is the step in which the payment service charges the order's
// card.
func Payment() contract.Step[PaymentRequest] {
	return contract.Step[PaymentRequest]{Name: "payment", ReplyType: "PaymentUpdated",
		Succeeded: "REQUESTED", Failed: "FAILED", Cancelled: "CANCELLED"}
}

// PaymentRequest asks for a payment (REQUEST) or its refund (CANCEL).
type PaymentRequest struct {
	OrderID    int64 `json:"order-id"`
	CustomerID int64 `json:"customer-id"`
	PaymentDue int64 `json:"payment-due"` // cents
	// CardSealed is the card number sealed with pkg/card for the saga id
	// (v1.<key id>.<ciphertext>), in place of debezium-examples'
	// "credit-card-no". A REQUEST carries it, a CANCEL does not.
	CardSealed string `json:"credit-card-sealed,omitempty"`
}

// CreditRelease is the step in which the customer service gives back the
// credit an order's placement saga reserved (its credit-approval step),
// when an accepted order is cancelled. It never fails: credit that was
// never reserved, or was given back already, is released with nothing
// done.
func CreditRelease() contract.Step[ReleaseRequest] {
	return contract.Step[ReleaseRequest]{Name: "credit-release", ReplyType: "CreditReleased",
		Succeeded: "RELEASED", Failed: "NOT_RELEASED", Cancelled: "CANCELLED"}
}

// PaymentRefund is the step in which the payment service refunds the
// payment an order's placement saga took (its payment step), when an
// accepted order is cancelled. It never fails: a payment never taken, or
// refunded already, is refunded with nothing done.
func PaymentRefund() contract.Step[ReleaseRequest] {
	return contract.Step[ReleaseRequest]{Name: "payment-refund", ReplyType: "PaymentRefunded",
		Succeeded: "REFUNDED", Failed: "NOT_REFUNDED", Cancelled: "CANCELLED"}
}

// ReleaseRequest asks to give back what an order's placement saga took.
type ReleaseRequest struct {
	OrderID    int64 `json:"order-id"`
	CustomerID int64 `json:"customer-id"`
	PaymentDue int64 `json:"payment-due"` // cents
	// PlacementSagaID is the saga whose step is undone.
	PlacementSagaID uuid.UUID `json:"placement-saga-id"`
}
