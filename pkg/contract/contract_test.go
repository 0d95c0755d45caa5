package contract_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sagabox/sagabox/pkg/contract"
)

type req struct {
	OrderID int64  `json:"order-id"`
	Note    string `json:"note,omitempty"`
}

var step = contract.Step[req]{Name: "thing", ReplyType: "ThingUpdated", Succeeded: "OK", Failed: "NO", Cancelled: "UNDONE"}

func TestTopicsAndInfo(t *testing.T) {
	t.Parallel()
	if step.RequestTopic() != "thing.request" || step.ReplyTopic() != "thing.response" {
		t.Errorf("topics %s, %s", step.RequestTopic(), step.ReplyTopic())
	}
	want := contract.Info{Name: "thing", ReplyType: "ThingUpdated", Succeeded: "OK", Failed: "NO", Cancelled: "UNDONE"}
	if diff := cmp.Diff(want, step.Info()); diff != "" {
		t.Errorf("info (-want +got):\n%s", diff)
	}
}

func TestRequestsRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind contract.Kind
		in   req
		want string
	}{
		{contract.Request, req{OrderID: 7}, `{"order-id":7,"type":"REQUEST"}`},
		{contract.Cancel, req{OrderID: 7, Note: "x"}, `{"order-id":7,"note":"x","type":"CANCEL"}`},
	} {
		b, err := step.EncodeRequest(tc.kind, tc.in)
		if err != nil || string(b) != tc.want {
			t.Errorf("EncodeRequest(%s, %+v) = %s, %v; want %s", tc.kind, tc.in, b, err, tc.want)
		}
		got, err := step.DecodeRequest(tc.kind, b)
		if err != nil || got != tc.in {
			t.Errorf("DecodeRequest(%s) = %+v, %v; want %+v", b, got, err, tc.in)
		}
	}
	empty := contract.Step[struct{}]{Name: "empty"}
	if b, err := empty.EncodeRequest(contract.Request, struct{}{}); err != nil || string(b) != `{"type":"REQUEST"}` {
		t.Errorf("an empty payload: %s, %v", b, err)
	}
	list := contract.Step[[]int]{Name: "list"}
	if _, err := list.EncodeRequest(contract.Request, []int{1}); err == nil {
		t.Error("a payload that is not an object was encoded")
	}
}

func TestBadRequestsAreRefused(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		kind contract.Kind
		body string
	}{
		"unknown kind":            {"REFUND", `{}`},
		"no kind":                 {"", `{}`},
		"not JSON":                {contract.Request, `{"order-id":`},
		"not an object":           {contract.Request, `[1]`},
		"the body says cancel":    {contract.Request, `{"type":"CANCEL"}`},
		"a field of another type": {contract.Cancel, `{"order-id":"7"}`},
	} {
		if _, err := step.DecodeRequest(tc.kind, []byte(tc.body)); !errors.Is(err, contract.ErrBadMessage) {
			t.Errorf("%s: %v, want ErrBadMessage", name, err)
		}
	}
}

func TestReplies(t *testing.T) {
	t.Parallel()
	i := step.Info()
	for _, st := range i.Statuses() {
		got, err := i.DecodeReply(i.EncodeReply(st))
		if err != nil || got != st {
			t.Errorf("reply %s: %s, %v", st, got, err)
		}
	}
	for _, bad := range []string{`{"status":"MAYBE"}`, `{}`, `nope`} {
		if _, err := i.DecodeReply([]byte(bad)); !errors.Is(err, contract.ErrBadMessage) {
			t.Errorf("reply %s: %v, want ErrBadMessage", bad, err)
		}
	}
}
