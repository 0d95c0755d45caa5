package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sagabox/sagabox/pkg/saga"
)

// The order-placement saga: reserve the customer's credit, then take the
// payment. Adding a step is adding one saga.Step here (and a participant that
// consumes "<name>.request" and replies on "<name>.response").
const (
	PlacementSaga      = "order-placement"
	StepCreditApproval = "credit-approval"
	StepPayment        = "payment"
)

// Request message types (the outbox "type", Kafka header "eventType").
const (
	TypeRequest = "REQUEST"
	TypeCancel  = "CANCEL"
)

// RequestPayload is the saga payload and the body of every request and
// compensation of the order-placement saga: debezium-examples/saga's
// fields, except that the card number never travels in clear.
type RequestPayload struct {
	OrderID    int64 `json:"order-id"`
	CustomerID int64 `json:"customer-id"`
	PaymentDue int64 `json:"payment-due"` // cents
	// CardSealed is the card number sealed with pkg/card for the saga id
	// (v1.<key id>.<ciphertext>), in place of debezium-examples'
	// "credit-card-no". Of the messages, only the payment request carries
	// it: the customer service and the compensations have no use for it.
	CardSealed string `json:"credit-card-sealed,omitempty"`
	Type       string `json:"type"`
}

// Placement is the definition of the order-placement saga with the deadline
// policy of s: each step waits its timeout for a reply, a request is sent
// again s.Retries times (the participants answer a repeated request with
// the first answer), then the step is abandoned and the saga compensates
// — the abandoned step included, since it may have taken effect.
func Placement(s Settings) saga.Definition {
	deadline := func(timeout time.Duration) saga.Deadline {
		return saga.Deadline{Timeout: timeout, Retries: s.Retries, MaxTimeout: s.MaxTimeout}
	}
	return saga.Definition{
		Type: PlacementSaga,
		Steps: []saga.Step{
			{
				Name:       StepCreditApproval,
				Request:    message(TypeRequest, false),
				Compensate: message(TypeCancel, false),
				Outcome: outcome(map[string]saga.StepStatus{
					"APPROVED": saga.StepSucceeded, "REJECTED": saga.StepFailed, "CANCELLED": saga.StepCompensated,
				}),
				Deadline: deadline(s.CreditApprovalTimeout),
			},
			{
				Name:       StepPayment,
				Request:    message(TypeRequest, true),
				Compensate: message(TypeCancel, false),
				Outcome: outcome(map[string]saga.StepStatus{
					"REQUESTED": saga.StepSucceeded, "FAILED": saga.StepFailed, "CANCELLED": saga.StepCompensated,
				}),
				Deadline: deadline(s.PaymentTimeout),
			},
		},
	}
}

// errNoSealedCard reports a saga payload without a sealed card where the
// payment request needs one: a payload an older version wrote with the
// number in clear, which the order service seals when it starts
// (SealLegacyCards). Transient: the message that led here is retried.
var errNoSealedCard = errors.New("saga payload has no sealed card number")

// message builds a step message: the saga payload with its "type" set,
// carrying the sealed card only if withCard.
func message(typ string, withCard bool) func(json.RawMessage) (saga.Message, error) {
	return func(payload json.RawMessage) (saga.Message, error) {
		var p RequestPayload
		if err := json.Unmarshal(payload, &p); err != nil {
			return saga.Message{}, fmt.Errorf("decode saga payload: %w", err)
		}
		if withCard && p.CardSealed == "" {
			return saga.Message{}, errNoSealedCard
		}
		if !withCard {
			p.CardSealed = ""
		}
		p.Type = typ
		b, err := json.Marshal(p)
		if err != nil {
			return saga.Message{}, fmt.Errorf("encode %s message: %w", typ, err)
		}
		return saga.Message{Type: typ, Payload: b}, nil
	}
}

// outcome maps a participant reply {"status": "..."} to a step status.
func outcome(statuses map[string]saga.StepStatus) func(json.RawMessage) (saga.StepStatus, error) {
	return func(reply json.RawMessage) (saga.StepStatus, error) {
		var r struct {
			Status string `json:"status"`
		}
		if err := json.Unmarshal(reply, &r); err != nil {
			return "", fmt.Errorf("decode reply: %w", err)
		}
		s, ok := statuses[r.Status]
		if !ok {
			return "", fmt.Errorf("unknown reply status %q", r.Status)
		}
		return s, nil
	}
}
