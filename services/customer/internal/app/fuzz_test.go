package app_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/sagabox/sagabox/pkg/consumer"
	"github.com/sagabox/sagabox/services/customer/internal/app"
)

// FuzzDecode feeds arbitrary keys and values to the customer service's
// decoding of credit-approval.request messages. It fails only permanently
// (the message is parked); what it accepts has the key's saga id and a
// type it answers, REQUEST or CANCEL.
func FuzzDecode(f *testing.F) {
	for _, m := range badMessages {
		f.Add(m.key, m.value)
	}
	f.Add(uuid.NewString(), requestPayload("REQUEST", 456, 4999))
	f.Add(uuid.NewString(), requestPayload("CANCEL", 999, 0))
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		sagaID, req, err := app.Decode(consumer.Message{Topic: app.RequestTopic, Key: key, Value: value, ID: uuid.New()})
		if err != nil {
			if !errors.Is(err, consumer.ErrPermanent) {
				t.Fatalf("refused %q %q with a transient error %v", key, value, err)
			}
			return
		}
		if want, err := uuid.Parse(key); err != nil || sagaID != want {
			t.Fatalf("accepted key %q as saga %s", key, sagaID)
		}
		if req.Type != "REQUEST" && req.Type != "CANCEL" || !json.Valid(value) {
			t.Fatalf("accepted %q as %+v", value, req)
		}
	})
}
