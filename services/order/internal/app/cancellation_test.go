package app_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sagabox/sagabox/contracts"
	"github.com/sagabox/sagabox/pkg/saga"
	"github.com/sagabox/sagabox/pkg/saga/sagatest"
	"github.com/sagabox/sagabox/services/order/internal/app"
	"github.com/sagabox/sagabox/services/order/internal/store"
)

// accept places an order and answers its saga's steps until it is
// ACCEPTED.
func accept(t *testing.T, a *app.App, pool *pgxpool.Pool) store.Order {
	t.Helper()
	o := place(t, a)
	for _, step := range []string{contracts.CreditApproval().Name, contracts.Payment().Name} {
		c := map[string]string{contracts.CreditApproval().Name: "APPROVED", contracts.Payment().Name: "REQUESTED"}
		if err := onReply(t, pool, a, replyMessage(step, o.SagaID.String(), c[step])); err != nil {
			t.Fatal(err)
		}
	}
	got, err := store.GetOrder(context.Background(), pool, o.ID)
	if err != nil || got.Status != store.StatusAccepted {
		t.Fatalf("order %+v (%v), want ACCEPTED", got, err)
	}
	return got
}

// An accepted order is cancelled by its own saga: the refund and the
// release are asked for at once, and the order is CANCELLED when both are
// done; only an ACCEPTED order can be cancelled, once.
func TestCancelOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, pool := newApp(t)
	o := accept(t, a, pool)

	c, err := a.CancelOrder(ctx, o.ID)
	if err != nil || c.Status != store.StatusCancelling {
		t.Fatalf("cancel: %+v, %v", c, err)
	}
	s, err := saga.Load(ctx, pool, c.CancelSagaID)
	if err != nil || s.Type != app.CancellationSaga || len(s.Waits) != 2 {
		t.Fatalf("cancellation saga %+v, %v; want both steps waiting", s, err)
	}
	var sent []string
	for _, m := range outboxRows(t, pool) {
		if m.AggregateID == c.CancelSagaID.String() {
			sent = append(sent, m.AggregateType+" "+m.Type)
			if m.Payload.OrderID != o.ID || m.Payload.CustomerID != o.CustomerID || m.Payload.PaymentDue != o.PaymentDue {
				t.Errorf("%s request %+v, want the order's", m.AggregateType, m.Payload)
			}
		}
	}
	slices.Sort(sent)
	if len(sent) != 2 || sent[0] != "credit-release REQUEST" || sent[1] != "payment-refund REQUEST" {
		t.Errorf("sent %v, want the refund and the release requests", sent)
	}

	for _, tc := range []struct {
		id   int64
		want error
	}{{o.ID, app.ErrCannotCancel}, {999_999, store.ErrNotFound}} {
		if _, err := a.CancelOrder(ctx, tc.id); !errors.Is(err, tc.want) {
			t.Errorf("cancel order %d again: %v, want %v", tc.id, err, tc.want)
		}
	}

	if err := onReply(t, pool, a, replyMessage("credit-release", c.CancelSagaID.String(), "RELEASED")); err != nil {
		t.Fatal(err)
	}
	if got, _ := store.GetOrder(ctx, pool, o.ID); got.Status != store.StatusCancelling {
		t.Errorf("after the release alone: %s, want CANCELLING", got.Status)
	}
	if err := onReply(t, pool, a, replyMessage("payment-refund", c.CancelSagaID.String(), "REFUNDED")); err != nil {
		t.Fatal(err)
	}
	v, err := a.GetOrder(ctx, o.ID)
	if err != nil || v.Order.Status != store.StatusCancelled || v.Cancellation == nil || v.Cancellation.Status != saga.StatusSucceeded {
		t.Errorf("after both: %+v, %v; want CANCELLED with its saga SUCCEEDED", v, err)
	}
	if _, err := a.CancelOrder(ctx, o.ID); !errors.Is(err, app.ErrCannotCancel) {
		t.Errorf("cancel a cancelled order: %v", err)
	}
}

func TestOnlyAcceptedOrdersAreCancelled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, pool := newApp(t)
	created := place(t, a)
	rejected := place(t, a)
	if err := onReply(t, pool, a, replyMessage("credit-approval", rejected.SagaID.String(), "REJECTED")); err != nil {
		t.Fatal(err)
	}
	for _, o := range []store.Order{created, rejected} {
		before := snapshot(t, pool, o)
		if _, err := a.CancelOrder(ctx, o.ID); !errors.Is(err, app.ErrCannotCancel) {
			t.Errorf("cancel order %d: %v, want ErrCannotCancel", o.ID, err)
		}
		if after := snapshot(t, pool, o); len(after.Outbox) != len(before.Outbox) || after.Order.Status != before.Order.Status {
			t.Errorf("a refused cancel changed order %d: %s → %s", o.ID, before.Order.Status, after.Order.Status)
		}
	}
}

// The cancellation definition as data: both steps at once, nothing to
// compensate, never given up on and never aborted.
func TestCancellationDefinition(t *testing.T) {
	t.Parallel()
	d := app.CancellationDefinition(app.DefaultSettings())
	refund, release := d.Steps[0].Name, d.Steps[1].Name
	sagatest.Walk(t, d, sagatest.Payload(app.Cancellation{OrderID: 1, CustomerID: 456, PaymentDue: 4999}))
	k := sagatest.New(t, d, app.Cancellation{OrderID: 1, CustomerID: 456, PaymentDue: 4999})
	k.ExpectSent(sagatest.Request(refund), sagatest.Request(release))
	k.Abort().ExpectRefused(saga.ErrWrongState)
	k.Advance(10 * d.Steps[0].Deadline.Timeout).ExpectStatus(saga.StatusStarted)
	k.Reply(release, saga.StepSucceeded).ExpectSent()
	k.Reply(refund, saga.StepSucceeded).ExpectStatus(saga.StatusSucceeded)
}
