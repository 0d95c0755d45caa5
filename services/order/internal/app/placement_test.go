package app_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/sagabox/sagabox/contracts"
	"github.com/sagabox/sagabox/pkg/saga"
	"github.com/sagabox/sagabox/pkg/saga/sagatest"
	"github.com/sagabox/sagabox/services/order/internal/app"
)

// The order-placement saga tested as data, without a database: the walk of
// every path and scenarios on a fake clock. Step names and waits come from
// the definition, so that these tests follow it.

// sealed stands for a card number sealed with pkg/card.
const sealed = "v1.k1.c2VhbGVkLWNhcmQ"

var placement = app.Placement{OrderID: 1, CustomerID: 456, PaymentDue: 4999, CardSealed: sealed}

// placementSaga returns the definition with the default settings and its
// two steps' names.
func placementSaga() (d saga.Definition, credit, payment string) {
	d = app.PlacementDefinition(app.DefaultSettings())
	return d, d.Steps[0].Name, d.Steps[1].Name
}

func TestPlacementKeepsTheInvariantsOnEveryPath(t *testing.T) {
	t.Parallel()
	d, _, _ := placementSaga()
	r := sagatest.Walk(t, d, sagatest.Payload(placement))
	t.Logf("paths: %v; longest (%d events): %v", r.Paths, len(r.Longest), r.Longest)
}

// expectOnlyPaymentRequestCarriesTheCard checks the body of every message
// k's saga sent: only the payment request carries the sealed card.
func expectOnlyPaymentRequestCarriesTheCard(t *testing.T, k *sagatest.Kit, payment string) {
	t.Helper()
	for _, m := range k.Messages() {
		var body map[string]any
		if err := json.Unmarshal(m.Payload, &body); err != nil {
			t.Fatalf("%s %s: %v", m.Step, m.Type, err)
		}
		card, has := body["credit-card-sealed"]
		if m.Step == payment && !m.Compensate {
			if card != sealed {
				t.Errorf("payment request carries card %v, want %s: %s", card, sealed, m.Payload)
			}
		} else if has {
			t.Errorf("%s %s carries the card: %s", m.Step, m.Type, m.Payload)
		}
	}
}

func TestPlacementSucceeds(t *testing.T) {
	t.Parallel()
	d, credit, payment := placementSaga()
	k := sagatest.New(t, d, placement)
	k.ExpectSent(sagatest.Request(credit)).ExpectStep(credit, saga.StepStarted).ExpectDeadline(d.Steps[0].Deadline.Timeout)
	// The replies as the participants send them, read by their contracts.
	c, p := contracts.CreditApproval(), contracts.Payment()
	k.ReplyBody(credit, c.Info().EncodeReply(c.Succeeded)).
		ExpectSent(sagatest.Request(payment)).ExpectStep(payment, saga.StepStarted).ExpectDeadline(d.Steps[1].Deadline.Timeout)
	k.ReplyBody(payment, p.Info().EncodeReply(p.Succeeded)).
		ExpectSent().ExpectStatus(saga.StatusSucceeded).ExpectStep(credit, saga.StepSucceeded).ExpectStep(payment, saga.StepSucceeded)
	k.Reply(payment, saga.StepSucceeded).ExpectRefused(saga.ErrUnexpectedReply) // redelivered

	want := []struct{ step, typ string }{{credit, "REQUEST"}, {payment, "REQUEST"}}
	got := k.Messages()
	if len(got) != len(want) {
		t.Fatalf("sent %+v, want %v", got, want)
	}
	for i, w := range want {
		if got[i].Step != w.step || got[i].Type != w.typ {
			t.Errorf("message %d: %s %s, want %s %s", i, got[i].Step, got[i].Type, w.step, w.typ)
		}
	}
	expectOnlyPaymentRequestCarriesTheCard(t, k, payment)
}

func TestPlacementPaymentRefusedCompensatesTheCredit(t *testing.T) {
	t.Parallel()
	d, credit, payment := placementSaga()
	k := sagatest.New(t, d, placement)
	k.Reply(credit, saga.StepSucceeded)
	k.Reply(payment, saga.StepFailed).
		ExpectStatus(saga.StatusAborting).ExpectStep(payment, saga.StepFailed).
		ExpectSent(sagatest.Compensation(credit)).ExpectStep(credit, saga.StepCompensating)
	k.Reply(payment, saga.StepCompensated).ExpectRefused(saga.ErrUnexpectedReply) // a refused payment has nothing to refund
	k.Reply(credit, saga.StepCompensated).
		ExpectSent().ExpectStatus(saga.StatusAborted).ExpectCompensated(credit).ExpectStep(payment, saga.StepFailed)
	expectOnlyPaymentRequestCarriesTheCard(t, k, payment)
}

// The payment service never answers: the request is sent again at each
// deadline, Retries times, then the payment is abandoned — it may have been
// taken — and the saga compensates: the credit first, then the payment.
func TestPlacementPaymentDeadlineAbandonsAndCompensatesInOrder(t *testing.T) {
	t.Parallel()
	d, credit, payment := placementSaga()
	policy := d.Steps[1].Deadline
	k := sagatest.New(t, d, placement)
	k.Reply(credit, saga.StepSucceeded).ExpectSent(sagatest.Request(payment))

	k.Advance(policy.Wait(0) - time.Second).ExpectSent().ExpectAttempt(0) // not yet
	k.Advance(time.Second)
	for attempt := 1; attempt <= policy.Retries; attempt++ {
		k.ExpectSent(sagatest.Request(payment)).ExpectAttempt(attempt).ExpectDeadline(policy.Wait(attempt))
		k.Advance(policy.Wait(attempt))
	}
	// The deadline of the last retry: abandoned.
	k.ExpectSent(sagatest.Compensation(credit)).
		ExpectStatus(saga.StatusAborting).ExpectStep(payment, saga.StepAbandoned).ExpectAttempt(0)
	k.Reply(payment, saga.StepSucceeded).ExpectRefused(saga.ErrUnexpectedReply)      // too late
	k.Reply(payment, saga.StepCompensated).ExpectRefused(saga.ErrEarlyReply)         // its refund is not sent yet
	k.Reply(credit, saga.StepCompensated).ExpectSent(sagatest.Compensation(payment)) // now it is
	k.Reply(payment, saga.StepCompensated).
		ExpectSent().ExpectStatus(saga.StatusAborted).ExpectCompensated(credit, payment)

	var order []saga.Action
	for _, m := range k.Messages() {
		order = append(order, m.Action)
	}
	want := []saga.Action{sagatest.Request(credit)}
	for range 1 + policy.Retries {
		want = append(want, sagatest.Request(payment))
	}
	want = append(want, sagatest.Compensation(credit), sagatest.Compensation(payment))
	if len(order) != len(want) {
		t.Fatalf("sent %v, want %v", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Errorf("message %d: %+v, want %+v (all: %v)", i, order[i], want[i], order)
		}
	}
	expectOnlyPaymentRequestCarriesTheCard(t, k, payment)
}

// The operator aborts while the payment is awaited: it is abandoned and
// compensated after the credit.
func TestPlacementOperatorAbortWhileWaiting(t *testing.T) {
	t.Parallel()
	d, credit, payment := placementSaga()
	k := sagatest.New(t, d, placement)
	k.Reply(credit, saga.StepSucceeded)
	k.Advance(d.Steps[1].Deadline.Timeout / 2).ExpectSent()
	k.Abort().
		ExpectStatus(saga.StatusAborting).ExpectStep(payment, saga.StepAbandoned).
		ExpectSent(sagatest.Compensation(credit)).ExpectDeadline(d.Steps[0].Deadline.Timeout)
	k.Abort().ExpectRefused(saga.ErrWrongState)
	k.Reply(credit, saga.StepCompensated).ExpectSent(sagatest.Compensation(payment))
	k.Reply(payment, saga.StepCompensated).ExpectStatus(saga.StatusAborted).ExpectCompensated(credit, payment)
	expectOnlyPaymentRequestCarriesTheCard(t, k, payment)
}
