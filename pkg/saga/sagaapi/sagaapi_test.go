package sagaapi_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/sagabox/sagabox/pkg/saga/sagaapi"
)

// FuzzValidate feeds arbitrary reasons and steps to the validation of an
// operator's action: an accepted request has an operator, a reason that
// fits the history's text column and a log line as it is — valid UTF-8, no
// control character but line breaks and tabs, at most MaxReasonLen bytes,
// not blank when required — and a step exactly for compensate; a refused
// one is ErrBadInput (400).
func FuzzValidate(f *testing.F) {
	for _, r := range []string{"customer asked", "", "  ", "a\x00b", "a\x1bb", "a\xffb", "line\nbreak\ttab",
		strings.Repeat("x", sagaapi.MaxReasonLen), strings.Repeat("x", sagaapi.MaxReasonLen+1), "é\u2028"} {
		f.Add(sagaapi.ActionAbort, r, "", true)
		f.Add(sagaapi.ActionRetry, r, "", false)
		f.Add(sagaapi.ActionCompensate, r, "payment", true)
	}
	f.Fuzz(func(t *testing.T, action, reason, step string, needReason bool) {
		err := sagaapi.Validate(action, "ops", sagaapi.ActionRequest{Step: step, Reason: reason}, needReason)
		if err != nil {
			if !errors.Is(err, sagaapi.ErrBadInput) {
				t.Fatalf("refused %q with %v, want ErrBadInput", reason, err)
			}
			return
		}
		if !utf8.ValidString(reason) || len(reason) > sagaapi.MaxReasonLen || (needReason && strings.TrimSpace(reason) == "") ||
			strings.ContainsFunc(reason, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }) {
			t.Fatalf("accepted reason %q", reason)
		}
		if (action == sagaapi.ActionCompensate) != (step != "") {
			t.Fatalf("accepted %s with step %q", action, step)
		}
	})
}

// A saga's detail carries the service's fields at the top of its JSON
// object, and reads back.
func TestDetailCarriesTheServicesFields(t *testing.T) {
	t.Parallel()
	d := sagaapi.Detail{Saga: sagaapi.Saga{ID: uuid.New(), Type: "t"}, History: []sagaapi.History{},
		Extra: map[string]json.RawMessage{"orderId": json.RawMessage(`7`)}}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil || string(top["orderId"]) != "7" || top["saga"] == nil {
		t.Fatalf("%s: %v", b, err)
	}
	var back sagaapi.Detail
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(d, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}
