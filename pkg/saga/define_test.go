package saga_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sagabox/sagabox/pkg/contract"
	"github.com/sagabox/sagabox/pkg/saga"
)

type order struct {
	ID     int64  `json:"id"`
	Amount int64  `json:"amount"`
	Secret string `json:"secret"`
}

type charge struct {
	OrderID int64  `json:"order-id"`
	Amount  int64  `json:"amount"`
	Secret  string `json:"secret,omitempty"`
}

var chargeContract = contract.Step[charge]{Name: "charge", ReplyType: "Charged", Succeeded: "OK", Failed: "NO", Cancelled: "BACK"}

func chargeOf(o order) (charge, error) {
	return charge{OrderID: o.ID, Amount: o.Amount, Secret: o.Secret}, nil
}

// A step built from a contract sends its payload as the contract encodes
// it, its compensation as Compensate says (the request by default), and
// reads its replies by the contract's statuses.
func TestCallBuildsTheStepFromItsContract(t *testing.T) {
	t.Parallel()
	dl := saga.Deadline{Timeout: 5e9}
	d := saga.Define("sale",
		saga.Call(chargeContract, chargeOf).Deadline(dl),
		saga.Call(chargeContract, chargeOf).Compensate(func(o order) (charge, error) { return charge{OrderID: o.ID}, nil }),
		saga.Call(chargeContract, chargeOf).NoCompensation(),
	)
	if d.Type != "sale" || len(d.Steps) != 3 || d.Steps[0].Deadline != dl || d.Steps[0].Contract != chargeContract.Info() {
		t.Fatalf("definition %+v", d)
	}
	payload := json.RawMessage(`{"id":7,"amount":100,"secret":"s"}`)
	for i, want := range []struct{ request, cancel string }{
		{`{"order-id":7,"amount":100,"secret":"s","type":"REQUEST"}`, `{"order-id":7,"amount":100,"secret":"s","type":"CANCEL"}`},
		{`{"order-id":7,"amount":100,"secret":"s","type":"REQUEST"}`, `{"order-id":7,"amount":0,"type":"CANCEL"}`},
	} {
		st := d.Steps[i]
		req, err := st.Request(payload)
		if err != nil || req.Type != "REQUEST" || string(req.Payload) != want.request {
			t.Errorf("step %d request %+v (%s), %v; want %s", i, req, req.Payload, err, want.request)
		}
		cancel, err := st.Compensate(payload)
		if err != nil || cancel.Type != "CANCEL" || string(cancel.Payload) != want.cancel {
			t.Errorf("step %d compensation %s, %v; want %s", i, cancel.Payload, err, want.cancel)
		}
	}
	if d.Steps[2].Compensate != nil {
		t.Error("NoCompensation left a compensation")
	}
	if _, err := d.Steps[0].Request(json.RawMessage(`[1]`)); err == nil {
		t.Error("a payload that is not the saga's type was accepted")
	}
	got := map[string]saga.StepStatus{}
	for _, st := range []string{"OK", "NO", "BACK"} {
		got[st], _ = d.Steps[0].Outcome(chargeContract.Info().EncodeReply(contract.Status(st)))
	}
	if diff := cmp.Diff(map[string]saga.StepStatus{"OK": saga.StepSucceeded, "NO": saga.StepFailed, "BACK": saga.StepCompensated}, got); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	if _, err := d.Steps[0].Outcome(json.RawMessage(`{"status":"MAYBE"}`)); !errors.Is(err, contract.ErrBadMessage) {
		t.Errorf("an unknown status: %v", err)
	}
}

func TestNewRefusesWhatItCannotRun(t *testing.T) {
	t.Parallel()
	two := saga.Definition{Type: "two-step", Steps: []saga.Step{step("one"), step("two")}}
	for name, cfg := range map[string]saga.Config{
		"no definition":  {},
		"a type twice":   {Definitions: []saga.Definition{two, two}},
		"an invalid one": {Definitions: []saga.Definition{{Type: "empty"}}},
	} {
		if _, err := saga.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
