package app_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/sagabox/sagabox/pkg/card"
	"github.com/sagabox/sagabox/pkg/consumer"
	"github.com/sagabox/sagabox/services/payment/internal/app"
)

// fuzzKeys is a fixed key ring, so that sealed inputs the fuzzer keeps open
// again in a later run.
const fuzzKeys = "fuzz:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

// FuzzDecode feeds arbitrary keys and values to the payment service's
// decoding of payment.request messages, sealed cards included. It fails
// only permanently (the message is parked), and its errors never quote the
// card; what it accepts has the key's saga id, a type it answers, and for a
// REQUEST a positive amount and a card that opens for that saga, of which
// it keeps the last four characters only.
func FuzzDecode(f *testing.F) {
	keys, err := card.ParseKeys(fuzzKeys)
	if err != nil {
		f.Fatal(err)
	}
	for _, m := range badMessages {
		f.Add(m.key, m.value)
	}
	for _, number := range []string{goodCard, refusedCard, "4111111111111111"} {
		sagaID := uuid.NewString()
		sealed, err := keys.Seal(number, []byte(sagaID))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(sagaID, requestPayload("REQUEST", sealed, 4999))
		f.Add(uuid.NewString(), requestPayload("REQUEST", sealed, 4999)) // another saga's card
		f.Add(sagaID, requestPayload("REQUEST", sealed[:len(sealed)-2], 4999))
		f.Add(sagaID, requestPayload("CANCEL", "", 4999))
	}
	a := app.New(slog.New(slog.DiscardHandler), keys)
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		req, err := a.Decode(consumer.Message{Topic: app.RequestTopic, Key: key, Value: value, ID: uuid.New()})
		var body struct {
			Sealed string `json:"credit-card-sealed"`
		}
		_ = json.Unmarshal(value, &body)
		number, openErr := keys.Open(body.Sealed, []byte(key))
		if err != nil {
			if !errors.Is(err, consumer.ErrPermanent) {
				t.Fatalf("refused %q %q with a transient error %v", key, value, err)
			}
			if openErr == nil && len(number) >= 6 && strings.Contains(err.Error(), number) {
				t.Fatalf("error %q quotes the card number", err)
			}
			return
		}
		if want, err := uuid.Parse(key); err != nil || req.SagaID != want {
			t.Fatalf("accepted key %q as saga %s", key, req.SagaID)
		}
		switch req.Type {
		case app.TypeCancel:
			if req.CardLast4 != "" {
				t.Fatalf("a CANCEL kept a card: %+v", req)
			}
		case app.TypeRequest:
			if req.PaymentDue <= 0 || openErr != nil || req.CardLast4 != card.Last4(number) || req.Refused != (req.CardLast4 == "9999") {
				t.Fatalf("accepted %q as %+v (card opens: %v)", value, req, openErr)
			}
		default:
			t.Fatalf("accepted type %q", req.Type)
		}
	})
}
