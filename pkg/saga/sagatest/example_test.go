package sagatest_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/sagabox/sagabox/pkg/contract"
	"github.com/sagabox/sagabox/pkg/saga"
	"github.com/sagabox/sagabox/pkg/saga/sagatest"
)

// How a user of pkg/saga tests a definition: a trip booked in three steps,
// each calling a participant through its contract. The hotel is released
// by the same message as its booking (a CANCEL), the card refunded without
// its number, and the confirmation e-mail cannot be taken back.

type trip struct {
	ID     int64  `json:"id"`
	Nights int    `json:"nights"`
	Card   string `json:"card"`
}

type booking struct {
	TripID int64 `json:"trip-id"`
	Nights int   `json:"nights"`
}

type charge struct {
	TripID int64  `json:"trip-id"`
	Amount int64  `json:"amount"`
	Card   string `json:"card,omitempty"`
}

var (
	hotel = contract.Step[booking]{Name: "hotel", ReplyType: "HotelBooked", Succeeded: "BOOKED", Failed: "FULL", Cancelled: "RELEASED"}
	card  = contract.Step[charge]{Name: "card", ReplyType: "CardCharged", Succeeded: "CHARGED", Failed: "DECLINED", Cancelled: "REFUNDED"}
	email = contract.Step[booking]{Name: "email", ReplyType: "EmailSent", Succeeded: "SENT", Failed: "BOUNCED", Cancelled: "-"}
)

var errNoCard = errors.New("trip has no card")

func tripDefinition() saga.Definition {
	book := func(t trip) (booking, error) { return booking{TripID: t.ID, Nights: t.Nights}, nil }
	pay := func(t trip) (charge, error) {
		if t.Card == "" {
			return charge{}, errNoCard
		}
		return charge{TripID: t.ID, Amount: 90 * int64(t.Nights), Card: t.Card}, nil
	}
	refund := func(t trip) (charge, error) { return charge{TripID: t.ID, Amount: 90 * int64(t.Nights)}, nil }
	return saga.Define("trip",
		saga.Call(hotel, book).Deadline(saga.Deadline{Timeout: time.Minute, Retries: 2, MaxTimeout: 3 * time.Minute}),
		saga.Call(card, pay).Compensate(refund).Deadline(saga.Deadline{Timeout: 30 * time.Second}),
		saga.Call(email, book).NoCompensation(), // no deadline: it waits for its reply forever
	)
}

var aTrip = trip{ID: 7, Nights: 3, Card: "4111-1111"}

// The walk: every path keeps the invariants, and the messages of every path
// can be built from the payload.
func TestTripKeepsTheInvariantsOnEveryPath(t *testing.T) {
	t.Parallel()
	r := sagatest.Walk(t, tripDefinition(), sagatest.Payload(aTrip))
	t.Logf("paths: %v; longest (%d events): %v", r.Paths, len(r.Longest), r.Longest)
}

func TestTripBooked(t *testing.T) {
	t.Parallel()
	k := sagatest.New(t, tripDefinition(), aTrip)
	k.ExpectSent(sagatest.Request("hotel")).ExpectStep("hotel", saga.StepStarted).ExpectDeadline(time.Minute)

	// A reply as the participant sends it, read by the step's contract.
	k.ReplyBody("hotel", hotel.Info().EncodeReply(hotel.Succeeded)).
		ExpectSent(sagatest.Request("card")).ExpectDeadline(30 * time.Second)
	if got, want := string(k.Sent()[0].Payload), `{"trip-id":7,"amount":270,"card":"4111-1111","type":"REQUEST"}`; got != want {
		t.Errorf("card request %s, want %s", got, want)
	}
	k.Reply("card", saga.StepSucceeded).ExpectSent(sagatest.Request("email")).ExpectDeadline(0)
	k.Advance(24 * time.Hour).ExpectSent().ExpectStatus(saga.StatusStarted) // no deadline: nothing fires
	k.Reply("email", saga.StepSucceeded).ExpectSent().ExpectStatus(saga.StatusSucceeded)

	// Late: a duplicate of a reply already applied.
	k.Reply("card", saga.StepSucceeded).ExpectRefused(saga.ErrUnexpectedReply).ExpectStatus(saga.StatusSucceeded)
}

// The e-mail bounces: it has nothing to undo, so the card is refunded, then
// the hotel released, newest first.
func TestTripEmailBouncesEverythingUndone(t *testing.T) {
	t.Parallel()
	k := sagatest.New(t, tripDefinition(), aTrip)
	k.Reply("hotel", saga.StepSucceeded).Reply("card", saga.StepSucceeded)
	k.ReplyBody("email", email.Info().EncodeReply(email.Failed)).
		ExpectStatus(saga.StatusAborting).ExpectSent(sagatest.Compensation("card"))
	if got, want := string(k.Sent()[0].Payload), `{"trip-id":7,"amount":270,"type":"CANCEL"}`; got != want {
		t.Errorf("refund %s, want %s (no card number)", got, want)
	}
	// A reply the state does not show as sent yet: the hotel's release.
	k.Reply("hotel", saga.StepCompensated).ExpectRefused(saga.ErrEarlyReply)
	k.Reply("card", saga.StepCompensated).ExpectSent(sagatest.Compensation("hotel"))
	k.Reply("hotel", saga.StepCompensated).ExpectSent().
		ExpectStatus(saga.StatusAborted).ExpectCompensated("hotel", "card").ExpectStep("email", saga.StepFailed)
}

// The hotel never answers: its request is sent again at doubling waits
// (capped), then the step is abandoned and released, in case it was booked.
// Its release is sent again until the operator confirms it by hand.
func TestTripHotelNeverAnswers(t *testing.T) {
	t.Parallel()
	k := sagatest.New(t, tripDefinition(), aTrip)
	k.Advance(59 * time.Second).ExpectSent().ExpectAttempt(0)
	k.Advance(time.Second).ExpectSent(sagatest.Request("hotel")).ExpectAttempt(1).ExpectDeadline(2 * time.Minute)
	// Both remaining deadlines pass: the last retry, then the abandon.
	k.Advance(2*time.Minute+3*time.Minute).
		ExpectSent(sagatest.Request("hotel"), sagatest.Compensation("hotel")).
		ExpectStatus(saga.StatusAborting).ExpectStep("hotel", saga.StepCompensating).
		ExpectAttempt(0).ExpectDeadline(time.Minute)
	release := sagatest.Compensation("hotel")
	k.Advance(10*time.Minute).ExpectSent(release, release, release, release).ExpectAttempt(4)
	k.Reply("hotel", saga.StepFailed).ExpectRefused(saga.ErrUnexpectedReply)
	k.MarkCompensated("card").ExpectRefused(saga.ErrWrongState)
	k.MarkCompensated("hotel").ExpectStatus(saga.StatusAborted).ExpectCompensated("hotel").ExpectStep("card", "")
	if n := len(k.Messages()); n != 8 {
		t.Errorf("%d messages sent, want 8", n)
	}
}

// The operator aborts while the card is being charged: the charge may have
// happened, so the hotel is released first, then the card refunded.
func TestTripAbortedByTheOperator(t *testing.T) {
	t.Parallel()
	k := sagatest.New(t, tripDefinition(), aTrip)
	k.Reply("hotel", saga.StepSucceeded)
	k.Retry().ExpectSent(sagatest.Request("card")).ExpectAttempt(1)
	k.Abort().ExpectStatus(saga.StatusAborting).ExpectStep("card", saga.StepAbandoned).ExpectSent(sagatest.Compensation("hotel"))
	k.Abort().ExpectRefused(saga.ErrWrongState)
	k.Reply("card", saga.StepSucceeded).ExpectRefused(saga.ErrUnexpectedReply) // the charge, too late
	k.Reply("hotel", saga.StepCompensated).ExpectSent(sagatest.Compensation("card"))
	k.Reply("card", saga.StepCompensated).ExpectStatus(saga.StatusAborted).ExpectCompensated("hotel", "card")
}

// A payload the card step cannot build its request from: the hotel's reply
// is refused: the Orchestrator's transaction would roll back.
func TestTripWithoutCard(t *testing.T) {
	t.Parallel()
	k := sagatest.New(t, tripDefinition(), json.RawMessage(`{"id":8,"nights":1}`))
	k.Reply("hotel", saga.StepSucceeded).ExpectRefused(errNoCard).
		ExpectStep("hotel", saga.StepStarted).ExpectSent()
	k.Reply("hotel", saga.StepFailed).ExpectStatus(saga.StatusAborted)
}
