package e2e_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/sagabox/sagabox/api"
	"github.com/sagabox/sagabox/contracts"
	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/pkg/participant"
)

// An accepted order cancelled: its order-cancellation saga refunds the
// payment and releases the credit, in parallel, through the real relays,
// broker and participants; the order is CANCELLING, then CANCELLED. Only an
// accepted order can be cancelled, once.
func TestCancelAcceptedOrder(t *testing.T) {
	t.Parallel()
	s := startSystem(t, options{})
	ctx := context.Background()
	order := s.client("order")
	p := s.placeOrder(requestFile(t, "place-order.json"))
	if v := s.waitSettled(p.OrderID, settleTimeout); v.Status != "ACCEPTED" {
		t.Fatalf("order %d is %s, want ACCEPTED", p.OrderID, v.Status)
	}

	c, err := order.CancelOrder(ctx, p.OrderID)
	if err != nil || c.Status != "CANCELLING" || c.OrderID != p.OrderID {
		t.Fatalf("cancel: %+v, %v", c, err)
	}
	var o api.Order
	testenv.Eventually(t, settleTimeout, func() bool {
		if o, err = order.Order(ctx, p.OrderID); err != nil {
			t.Fatal(err)
		}
		return o.Status == "CANCELLED"
	}, "order %d never CANCELLED: %+v", p.OrderID, &o)
	if o.Cancellation == nil || o.Cancellation.ID != c.SagaID || o.Cancellation.Type != "order-cancellation" ||
		o.Cancellation.Status != "SUCCEEDED" || o.Saga.Status != "SUCCEEDED" {
		t.Errorf("sagas: placement %+v, cancellation %+v", o.Saga, o.Cancellation)
	}
	if got := s.openLimit(customer456); got != initialLimit {
		t.Errorf("open limit %d, want it back at %d", got, initialLimit)
	}
	if diff := cmp.Diff([]payment{{OrderID: p.OrderID, Amount: 4999, Status: "REFUNDED"}}, s.payments(p.OrderID)); diff != "" {
		t.Errorf("payments (-want +got):\n%s", diff)
	}
	// What each participant did: the placement's steps undone, by the
	// cancellation's steps, which found them DONE.
	placement := uuid.MustParse(p.SagaID)
	for _, tc := range []struct {
		service, step string
		saga          uuid.UUID
		status, was   string
	}{
		{"customer", contracts.CreditApproval().Name, placement, participant.StatusUndone, ""},
		{"payment", contracts.Payment().Name, placement, participant.StatusUndone, ""},
		{"customer", contracts.CreditRelease().Name, c.SagaID, participant.StatusDone, participant.StatusDone},
		{"payment", contracts.PaymentRefund().Name, c.SagaID, participant.StatusDone, participant.StatusDone},
	} {
		rec, err := s.client(tc.service).StepRecord(ctx, tc.step, tc.saga)
		var r participant.Reversed
		if err == nil && tc.was != "" {
			err = json.Unmarshal(rec.Record, &r)
		}
		if err != nil || rec.Status != tc.status || r.Was != tc.was {
			t.Errorf("%s %s of saga %s: %s %s (%v); want %s, was %q", tc.service, tc.step, tc.saga, rec.Status, rec.Record, err,
				tc.status, tc.was)
		}
	}
	// The two requests left together, on their own topics, keyed by the
	// cancellation saga.
	for _, topic := range []string{"payment-refund.request", "credit-release.request"} {
		var types []string
		for _, r := range s.records(topic) {
			if string(r.Key) == c.SagaID.String() {
				types = append(types, header(r, "eventType"))
			}
		}
		if diff := cmp.Diff([]string{"REQUEST"}, types); diff != "" {
			t.Errorf("%s of the cancellation (-want +got):\n%s", topic, diff)
		}
	}

	rejected := s.placeOrder(requestFile(t, "place-invalid-order1.json"))
	s.waitSettled(rejected.OrderID, settleTimeout)
	for _, tc := range []struct {
		id   int64
		want int
	}{{p.OrderID, http.StatusConflict}, {rejected.OrderID, http.StatusConflict}, {999_999, http.StatusNotFound}} {
		if _, err := order.CancelOrder(ctx, tc.id); api.StatusOf(err) != tc.want {
			t.Errorf("cancel order %d: %v, want %d", tc.id, err, tc.want)
		}
	}
}
