package api

import (
	"time"

	"github.com/google/uuid"

	"github.com/sagabox/sagabox/pkg/consumer"
	"github.com/sagabox/sagabox/pkg/outbox"
	"github.com/sagabox/sagabox/pkg/saga/sagaapi"
)

// The bodies of the services' APIs that are this system's own; the saga
// operator API's are sagaapi's, the participants' pkg/participant's and
// pkg/contract's. Handlers and Client share these declarations.

// PlaceOrder is the body of POST /orders. Pointers tell a missing field
// from a zero one. Amounts are integer cents.
type PlaceOrder struct {
	ItemID       *int64  `json:"itemId"`
	Quantity     *int64  `json:"quantity"`
	CustomerID   *int64  `json:"customerId"`
	PaymentDue   *int64  `json:"paymentDue"`
	CreditCardNo *string `json:"creditCardNo"`
}

// Placed answers POST /orders (202): the order as it was created.
type Placed struct {
	OrderID int64     `json:"orderId"`
	SagaID  uuid.UUID `json:"sagaId"`
	Status  string    `json:"status"`
}

// Order answers GET /orders/{id}: the order and its saga. Only the card's
// last four characters ever leave the order service.
type Order struct {
	OrderID    int64        `json:"orderId"`
	CustomerID int64        `json:"customerId"`
	ItemID     int64        `json:"itemId"`
	Quantity   int          `json:"quantity"`
	PaymentDue int64        `json:"paymentDue"`
	CardLast4  string       `json:"creditCardLast4"`
	Status     string       `json:"status"`
	Saga       sagaapi.Saga `json:"saga"`
	// Cancellation is the order's order-cancellation saga, once one
	// started (status CANCELLING or CANCELLED).
	Cancellation *sagaapi.Saga `json:"cancellation,omitempty"`
}

// Cancelling answers POST /orders/{id}/cancel (202): the order, now
// CANCELLING, and its order-cancellation saga.
type Cancelling struct {
	OrderID int64     `json:"orderId"`
	SagaID  uuid.UUID `json:"sagaId"`
	Status  string    `json:"status"`
}

// Customer answers GET /customers/{id}: the open credit limit, in cents.
type Customer struct {
	ID        int64 `json:"id"`
	OpenLimit int64 `json:"openLimit"`
}

// Payment is one of GET /payments?orderId=: an order's payments.
type Payment struct {
	ID         int64     `json:"id"`
	SagaID     uuid.UUID `json:"sagaId"`
	OrderID    int64     `json:"orderId"`
	CustomerID int64     `json:"customerId"`
	Amount     int64     `json:"amount"` // cents
	CardLast4  string    `json:"creditCardLast4"`
	Status     string    `json:"status"` // COMPLETED, FAILED, REFUNDED
	CreatedAt  time.Time `json:"createdAt"`
}

// ParkedMessage is a parked message as /admin/parked shows it: its value as
// text (JSON, for this system's messages).
type ParkedMessage struct {
	consumer.Parked
	Value string `json:"value"`
}

// ParkedList answers GET /admin/parked.
type ParkedList struct {
	Parked []ParkedMessage `json:"parked"`
	Next   string          `json:"next,omitempty"` // continues the listing (after); empty on the last page
}

// ReplayResult is one message of POST /admin/parked/replay.
type ReplayResult struct {
	ID      int64  `json:"id"`
	Outcome string `json:"outcome,omitempty"`
	Error   string `json:"error,omitempty"`
}

// ReplayAll answers POST /admin/parked/replay.
type ReplayAll struct {
	Replayed []ReplayResult `json:"replayed"`
	Failed   []ReplayResult `json:"failed"`
}

// Messaging answers GET /admin/messaging: the service database's outbox,
// parked messages and the replication slots reading it.
type Messaging struct {
	Outbox outbox.Backlog `json:"outbox"`
	Parked int64          `json:"parked"`
	Slots  []outbox.Slot  `json:"slots"`
}

// Reason is the body of a parked message's replay.
type Reason struct {
	Reason string `json:"reason"`
}
