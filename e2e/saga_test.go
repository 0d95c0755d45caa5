package e2e_test

import (
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sagabox/sagabox/internal/testenv"
)

const (
	customer456   = int64(456)
	initialLimit  = int64(50000)
	settleTimeout = 30 * time.Second
)

// 1. A good order: credit approved and allocated, payment taken, ACCEPTED.
func TestPlaceOrderIsAccepted(t *testing.T) {
	t.Parallel()
	s := startSystem(t, options{})
	p := s.placeOrder(requestFile(t, "place-order.json"))
	if p.Status != "CREATED" || p.OrderID == 0 || p.SagaID == "" {
		t.Fatalf("POST /orders answered %+v", p)
	}
	v := s.waitSettled(p.OrderID, settleTimeout)
	if v.Status != "ACCEPTED" || v.Saga.Status != "SUCCEEDED" {
		t.Errorf("order %s, saga %s; want ACCEPTED, SUCCEEDED", v.Status, v.Saga.Status)
	}
	want := map[string]string{"credit-approval": "SUCCEEDED", "payment": "SUCCEEDED"}
	if diff := cmp.Diff(want, v.Saga.StepStatus); diff != "" {
		t.Errorf("step status (-want +got):\n%s", diff)
	}
	if got := s.openLimit(customer456); got != initialLimit-4999 {
		t.Errorf("openLimit = %d, want %d", got, initialLimit-4999)
	}
	if diff := cmp.Diff([]payment{{OrderID: p.OrderID, Amount: 4999, Status: "COMPLETED"}}, s.payments(p.OrderID)); diff != "" {
		t.Errorf("payments (-want +got):\n%s", diff)
	}
}

// 2. The card is refused: payment FAILED, the credit allocation compensated.
func TestRefusedCardCompensatesCredit(t *testing.T) {
	t.Parallel()
	s := startSystem(t, options{})
	p := s.placeOrder(requestFile(t, "place-invalid-order1.json"))
	v := s.waitSettled(p.OrderID, settleTimeout)
	if v.Status != "REJECTED" || v.Saga.Status != "ABORTED" {
		t.Errorf("order %s, saga %s; want REJECTED, ABORTED", v.Status, v.Saga.Status)
	}
	want := map[string]string{"credit-approval": "COMPENSATED", "payment": "FAILED"}
	if diff := cmp.Diff(want, v.Saga.StepStatus); diff != "" {
		t.Errorf("step status (-want +got):\n%s", diff)
	}
	if got := s.openLimit(customer456); got != initialLimit {
		t.Errorf("openLimit = %d, want it back at %d", got, initialLimit)
	}
	if diff := cmp.Diff([]payment{{OrderID: p.OrderID, Amount: 4999, Status: "FAILED"}}, s.payments(p.OrderID)); diff != "" {
		t.Errorf("payments (-want +got):\n%s", diff)
	}
	// The CANCEL travelled on the credit-approval request topic.
	var types []string
	for _, r := range s.records("credit-approval.request") {
		if string(r.Key) == p.SagaID {
			types = append(types, header(r, "eventType"))
		}
	}
	if diff := cmp.Diff([]string{"REQUEST", "CANCEL"}, types); diff != "" {
		t.Errorf("credit-approval requests of the saga (-want +got):\n%s", diff)
	}
}

// 3. Over the limit: credit rejected, the payment step never requested.
func TestOverLimitIsRejectedWithoutPayment(t *testing.T) {
	t.Parallel()
	s := startSystem(t, options{})
	p := s.placeOrder(requestFile(t, "place-invalid-order2.json"))
	v := s.waitSettled(p.OrderID, settleTimeout)
	if v.Status != "REJECTED" || v.Saga.Status != "ABORTED" {
		t.Errorf("order %s, saga %s; want REJECTED, ABORTED", v.Status, v.Saga.Status)
	}
	if diff := cmp.Diff(map[string]string{"credit-approval": "FAILED"}, v.Saga.StepStatus); diff != "" {
		t.Errorf("step status (-want +got):\n%s", diff)
	}
	if got := s.openLimit(customer456); got != initialLimit {
		t.Errorf("openLimit = %d, want %d", got, initialLimit)
	}
	for _, r := range s.records("payment.request") {
		if string(r.Key) == p.SagaID {
			t.Errorf("payment requested for a rejected order: %s", r.Value)
		}
	}
	if ps := s.payments(p.OrderID); len(ps) != 0 {
		t.Errorf("payments = %+v, want none", ps)
	}
}

// 4. The payment service is down: the saga waits in payment STARTED; once
// the service is back, it completes.
func TestSagaWaitsForStoppedPaymentService(t *testing.T) {
	t.Parallel()
	s := startSystem(t, options{})
	if err := s.stack.StopService("payment"); err != nil {
		t.Fatal(err)
	}
	p := s.placeOrder(requestFile(t, "place-order.json"))
	// The request reaches Kafka, but no one answers it.
	testenv.Eventually(t, settleTimeout, func() bool {
		for _, r := range s.records("payment.request") {
			if string(r.Key) == p.SagaID {
				return true
			}
		}
		return false
	}, "payment request never published")
	v := s.order(p.OrderID)
	want := map[string]string{"credit-approval": "SUCCEEDED", "payment": "STARTED"}
	if v.Status != "CREATED" || v.Saga.Status != "STARTED" || !cmp.Equal(want, v.Saga.StepStatus) {
		t.Fatalf("while payment is down: order %s saga %s steps %v", v.Status, v.Saga.Status, v.Saga.StepStatus)
	}
	if err := s.stack.StartService("payment"); err != nil {
		t.Fatal(err)
	}
	v = s.waitSettled(p.OrderID, settleTimeout)
	if v.Status != "ACCEPTED" || v.Saga.Status != "SUCCEEDED" {
		t.Errorf("after restart: order %s saga %s; want ACCEPTED SUCCEEDED", v.Status, v.Saga.Status)
	}
}

// 7. Twenty concurrent orders of one customer ask for twice its limit: the
// accepted amounts never exceed the limit, and what the customer has
// allocated equals exactly the sum of the ACCEPTED orders.
func TestConcurrentOrdersNeverExceedTheLimit(t *testing.T) {
	t.Parallel()
	s := startSystem(t, options{})
	const n, due = 20, int64(4999)
	body := []byte(`{"itemId":1,"quantity":1,"customerId":456,"paymentDue":4999,"creditCardNo":"1234-5678-0000-4242"}`)
	ids := make([]int64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { ids[i] = s.placeOrder(body).OrderID })
	}
	wg.Wait()
	var accepted, rejected int64
	for _, id := range ids {
		switch v := s.waitSettled(id, 60*time.Second); v.Status {
		case "ACCEPTED":
			accepted += due
		case "REJECTED":
			rejected += due
			if v.Saga.StepStatus["credit-approval"] != "FAILED" {
				t.Errorf("order %d rejected with steps %v", id, v.Saga.StepStatus)
			}
		}
	}
	open := s.openLimit(customer456)
	t.Logf("accepted %d cents, rejected %d cents, open limit %d", accepted, rejected, open)
	if accepted > initialLimit {
		t.Errorf("accepted %d cents > limit %d", accepted, initialLimit)
	}
	if initialLimit-open != accepted {
		t.Errorf("limit - openLimit = %d, sum of accepted orders = %d", initialLimit-open, accepted)
	}
	if accepted != (initialLimit/due)*due {
		t.Errorf("accepted %d cents, want the %d orders that fit", accepted, initialLimit/due)
	}
	if accepted+rejected != n*due {
		t.Errorf("settled %d cents of %d", accepted+rejected, n*due)
	}
}
