package saga

import (
	"encoding/json"
	"fmt"

	"github.com/sagabox/sagabox/pkg/contract"
)

// StepBuilder is anything that makes a Step: a Step itself, or what Call
// returns.
type StepBuilder interface {
	Step() Step
}

// Step returns s: a Step is its own builder.
func (s Step) Step() Step { return s }

// Define returns version 1 of the definition of a saga type: its name and
// its steps, each after the one before it unless it says otherwise
// (CallStep.After), e.g.
//
//	saga.Define("order-placement",
//		saga.Call(contracts.CreditApproval(), creditRequest).Deadline(d),
//		saga.Call(contracts.Payment(), paymentRequest).Compensate(refund).Deadline(d))
//
//	saga.Define("order-cancellation", // two steps in parallel
//		saga.Call(contracts.PaymentRefund(), refund).After(),
//		saga.Call(contracts.CreditRelease(), release).After())
//
// A changed definition is a new version (Definition.Version), deployed
// beside the versions that sagas in flight still run.
func Define(sagaType string, steps ...StepBuilder) Definition {
	d := Definition{Type: sagaType}
	for _, s := range steps {
		d.Steps = append(d.Steps, s.Step())
	}
	return d
}

// CallStep is a step that calls the participant of a contract, built from
// the saga's payload P: see Call.
type CallStep[P, R any] struct {
	contract contract.Step[R]
	request  func(P) (R, error)
	cancel   func(P) (R, error)
	deadline Deadline
	noUndo   bool
	after    []string // nil: the step before it
}

// Call returns the step that calls the participant serving contract c: its
// request (REQUEST) is built by request from the saga's payload — a JSON
// document decoded into P — and its compensation (CANCEL) is the same
// unless Compensate says otherwise; the participant's replies map to the
// step's outcome as the contract says: Succeeded → SUCCEEDED, Failed →
// FAILED, Cancelled → COMPENSATED.
func Call[P, R any](c contract.Step[R], request func(P) (R, error)) CallStep[P, R] {
	return CallStep[P, R]{contract: c, request: request, cancel: request}
}

// Compensate returns the step with its compensation built by cancel.
func (b CallStep[P, R]) Compensate(cancel func(P) (R, error)) CallStep[P, R] {
	b.cancel = cancel
	return b
}

// NoCompensation returns the step with nothing to undo: when the saga
// aborts it is marked COMPENSATED without a message.
func (b CallStep[P, R]) NoCompensation() CallStep[P, R] {
	b.noUndo = true
	return b
}

// After returns the step waiting for steps (their names) instead of the
// step before it: it starts once all of them succeeded, in parallel with
// any other step that can start then. After() with no name starts it with
// the saga.
func (b CallStep[P, R]) After(steps ...string) CallStep[P, R] {
	b.after = append([]string{}, steps...)
	return b
}

// Deadline returns the step with deadline policy d.
func (b CallStep[P, R]) Deadline(d Deadline) CallStep[P, R] {
	b.deadline = d
	return b
}

// Step returns the step as the engine runs it.
func (b CallStep[P, R]) Step() Step {
	info := b.contract.Info()
	s := Step{
		Name:     info.Name,
		Contract: info,
		Request:  b.message(contract.Request, b.request),
		Outcome: func(reply json.RawMessage) (StepStatus, error) {
			st, err := info.DecodeReply(reply)
			if err != nil {
				return "", err
			}
			switch st {
			case info.Succeeded:
				return StepSucceeded, nil
			case info.Failed:
				return StepFailed, nil
			}
			return StepCompensated, nil
		},
		Deadline: b.deadline,
		After:    b.after,
	}
	if !b.noUndo {
		s.Compensate = b.message(contract.Cancel, b.cancel)
	}
	return s
}

func (b CallStep[P, R]) message(k contract.Kind, build func(P) (R, error)) func(json.RawMessage) (Message, error) {
	return func(payload json.RawMessage) (Message, error) {
		var p P
		if err := json.Unmarshal(payload, &p); err != nil {
			return Message{}, fmt.Errorf("decode saga payload: %w", err)
		}
		r, err := build(p)
		if err != nil {
			return Message{}, err
		}
		body, err := b.contract.EncodeRequest(k, r)
		if err != nil {
			return Message{}, err
		}
		return Message{Type: string(k), Payload: body}, nil
	}
}
