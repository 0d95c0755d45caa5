package app_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/sagabox/sagabox/pkg/saga"
	"github.com/sagabox/sagabox/services/order/internal/app"
)

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
	def := app.PlacementDefinition(app.DefaultSettings())
	f.Fuzz(func(t *testing.T, payload []byte) {
		var in requestPayload
		inErr := json.Unmarshal(payload, &in)
		for _, st := range def.Steps {
			for _, b := range []struct {
				typ   string
				build func(json.RawMessage) (saga.Message, error)
			}{{"REQUEST", st.Request}, {"CANCEL", st.Compensate}} {
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
				case st.Name == stepPayment && b.typ == "REQUEST":
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
