package app_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/sagabox/sagabox/pkg/consumer"
	"github.com/sagabox/sagabox/pkg/saga"
	"github.com/sagabox/sagabox/services/order/internal/app"
)

// FuzzReply feeds arbitrary topics, keys and values to the order service's
// reading of a participant's reply, before any state is touched: the step
// from the topic, the saga id from the key, the outcome from the body. It
// fails only permanently (the message is parked); what it reads is a
// "<step>.response" topic, the key's saga id, and one of the three outcomes
// a reply may have.
func FuzzReply(f *testing.F) {
	for _, tt := range badReplies {
		m := tt.msg(uuid.NewString())
		f.Add(m.Topic, m.Key, m.Value)
	}
	for _, step := range []string{app.StepCreditApproval, app.StepPayment} {
		for _, status := range []string{"APPROVED", "REJECTED", "CANCELLED", "REQUESTED", "FAILED"} {
			m := replyMessage(step, uuid.NewString(), status)
			f.Add(m.Topic, m.Key, m.Value)
		}
	}
	def := app.Placement(app.DefaultSettings())
	f.Fuzz(func(t *testing.T, topic, key string, value []byte) {
		step, sagaID, err := app.DecodeReply(consumer.Message{Topic: topic, Key: key, Value: value, ID: uuid.New()})
		if err != nil {
			if !errors.Is(err, consumer.ErrPermanent) {
				t.Fatalf("refused %q %q with a transient error %v", topic, key, err)
			}
			return
		}
		if want, err := uuid.Parse(key); err != nil || sagaID != want || topic != step+".response" {
			t.Fatalf("read %q %q as step %q of saga %s", topic, key, step, sagaID)
		}
		for _, st := range def.Steps {
			if st.Name != step {
				continue
			}
			outcome, err := st.Outcome(value)
			if err == nil && outcome != saga.StepSucceeded && outcome != saga.StepFailed && outcome != saga.StepCompensated {
				t.Fatalf("reply %q of step %s read as %q", value, step, outcome)
			}
		}
	})
}

// FuzzStepMessages feeds arbitrary saga payloads to the builders of every
// message of the order-placement saga. Only the payment request carries
// the card — sealed, as the payload has it, and it is refused without one;
// no other message carries a card at all, sealed or in clear, whatever the
// payload holds.
func FuzzStepMessages(f *testing.F) {
	f.Add([]byte(`{"order-id":1,"customer-id":456,"payment-due":4999,"credit-card-sealed":"v1.k1.AAAA","type":"REQUEST"}`))
	f.Add([]byte(`{"order-id":1,"customer-id":456,"payment-due":4999,"credit-card-no":"4111111111111111","type":"REQUEST"}`))
	f.Add([]byte(`{"order-id":1,"credit-card-sealed":"","credit-card":"x"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"credit-card-sealed":7}`))
	def := app.Placement(app.DefaultSettings())
	f.Fuzz(func(t *testing.T, payload []byte) {
		var in app.RequestPayload
		inErr := json.Unmarshal(payload, &in)
		for _, st := range def.Steps {
			for _, b := range []struct {
				typ   string
				build func(json.RawMessage) (saga.Message, error)
			}{{app.TypeRequest, st.Request}, {app.TypeCancel, st.Compensate}} {
				name := fmt.Sprintf("%s %s", st.Name, b.typ)
				m, err := b.build(payload)
				if err != nil {
					continue
				}
				if inErr != nil || m.Type != b.typ {
					t.Fatalf("%s built %+v from %q (%v)", name, m, payload, inErr)
				}
				var out map[string]any
				if err := json.Unmarshal(m.Payload, &out); err != nil || out["type"] != b.typ {
					t.Fatalf("%s built %s", name, m.Payload)
				}
				sealed, hasCard := out["credit-card-sealed"]
				for k := range out {
					if k != "credit-card-sealed" && strings.Contains(k, "card") {
						t.Fatalf("%s carries %q: %s", name, k, m.Payload)
					}
				}
				switch {
				case st.Name == app.StepPayment && b.typ == app.TypeRequest:
					if in.CardSealed == "" || sealed != in.CardSealed {
						t.Fatalf("payment request built from %q carries card %v", payload, sealed)
					}
				case hasCard:
					t.Fatalf("%s carries a card: %s", name, m.Payload)
				}
			}
		}
	})
}

// FuzzOperatorReason feeds arbitrary reasons to the validation of an
// operator action: an accepted reason fits the history's text column and a
// log line as it is — valid UTF-8, no NUL nor other control character but
// line breaks and tabs, at most MaxReasonLen bytes, not blank when one is
// required — and a refused one is ErrBadInput (a 400).
func FuzzOperatorReason(f *testing.F) {
	for _, r := range []string{"customer asked", "", "  ", "a\x00b", "a\x1bb", "a\xffb", "line\nbreak\ttab",
		strings.Repeat("x", app.MaxReasonLen), strings.Repeat("x", app.MaxReasonLen+1), "é\u2028"} {
		f.Add(r, true)
		f.Add(r, false)
	}
	f.Fuzz(func(t *testing.T, reason string, needReason bool) {
		err := app.ValidateOperator(app.Operator{Name: "ops", Reason: reason}, needReason)
		if err != nil {
			if !errors.Is(err, app.ErrBadInput) {
				t.Fatalf("reason %q refused with %v, want ErrBadInput", reason, err)
			}
			return
		}
		if !utf8.ValidString(reason) || len(reason) > app.MaxReasonLen || (needReason && strings.TrimSpace(reason) == "") ||
			strings.ContainsFunc(reason, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }) {
			t.Fatalf("accepted reason %q", reason)
		}
	})
}
