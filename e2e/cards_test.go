package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/pkg/card"
)

// sealedWith returns the id of the key the order's card is stored sealed
// with.
func (s *system) sealedWith(orderID int64) string {
	s.t.Helper()
	var sealed string
	err := s.dbs["order"].QueryRow(context.Background(), `SELECT credit_card_sealed FROM purchaseorder WHERE id = $1`, orderID).Scan(&sealed)
	if err != nil {
		s.t.Fatal(err)
	}
	id, ok := card.KeyID(sealed)
	if !ok {
		s.t.Fatalf("order %d: stored card %.10q… is not an envelope", orderID, sealed)
	}
	return id
}

// Key rotation with sagas in flight. Orders sealed with k1 wait for the
// payment service, which is down: their payment requests, sealed with k1,
// wait on the topic. Then k2 is put in front of k1: the payment service
// starts with both (it opens either), the order service restarts with both
// (it seals with k2). A new order is sealed with k2; every order, old and
// new, is paid.
func TestCardKeyRotationWithSagasInFlight(t *testing.T) {
	t.Parallel()
	ring, _ := testenv.CardKeys(t, "k2", "k1")
	k1 := strings.Split(ring, ",")[1]
	s := startSystem(t, options{cardKeys: k1})
	if err := s.stack.StopService("payment"); err != nil {
		t.Fatal(err)
	}
	body := func(card string) []byte {
		return fmt.Appendf(nil, `{"itemId":1,"quantity":1,"customerId":456,"paymentDue":100,"creditCardNo":%q}`, card)
	}
	var inFlight []placed
	for _, c := range []string{"4111-1111-1111-1111", "5500000000000004"} {
		p := s.placeOrder(body(c))
		inFlight = append(inFlight, p)
		testenv.Eventually(t, settleTimeout, func() bool {
			v := s.order(p.OrderID)
			return v.Saga.CurrentStep == "payment" && v.Saga.StepStatus["payment"] == "STARTED"
		}, "order %d never waited for its payment", p.OrderID)
		if got := s.sealedWith(p.OrderID); got != "k1" {
			t.Errorf("order %d sealed with %s, want k1", p.OrderID, got)
		}
	}

	// Rotate: the services that open first, then the one that seals.
	s.stack.SetCardKeys(ring)
	if err := s.stack.StartService("payment"); err != nil {
		t.Fatal(err)
	}
	if err := s.stack.StopService("order"); err != nil {
		t.Fatal(err)
	}
	if err := s.stack.StartService("order"); err != nil {
		t.Fatal(err)
	}
	s.waitHealthy("order")
	s.waitHealthy("payment")
	after := s.placeOrder(body("4000-0566-5566-5556"))
	if got := s.sealedWith(after.OrderID); got != "k2" {
		t.Errorf("order %d placed after the rotation sealed with %s, want k2", after.OrderID, got)
	}

	for _, p := range append(inFlight, after) {
		if v := s.waitSettled(p.OrderID, settleTimeout); v.Status != "ACCEPTED" {
			t.Errorf("order %d %s, saga %s %v; want ACCEPTED", p.OrderID, v.Status, v.Saga.Status, v.Saga.StepStatus)
		}
		if diff := cmp.Diff([]payment{{OrderID: p.OrderID, Amount: 100, Status: "COMPLETED"}}, s.payments(p.OrderID)); diff != "" {
			t.Errorf("payments of order %d (-want +got):\n%s", p.OrderID, diff)
		}
	}
	// On the topic: the requests sealed with k1 and the one sealed with k2.
	var keyIDs []string
	for _, r := range s.records("payment.request") {
		var v struct {
			Sealed string `json:"credit-card-sealed"`
		}
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatal(err)
		}
		id, _ := card.KeyID(v.Sealed)
		keyIDs = append(keyIDs, id)
	}
	if diff := cmp.Diff([]string{"k1", "k1", "k2"}, keyIDs, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("keys of the payment requests (-want +got):\n%s", diff)
	}
}
