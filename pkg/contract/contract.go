// Package contract defines the contract of one saga step between the
// orchestrator that calls it (pkg/saga) and the participant that serves it
// (pkg/participant), so that both sides import one definition instead of
// rebuilding topics, message types and statuses from strings.
//
// The wire format is debezium-examples/saga's. A step called "payment" has
// its requests on topic "payment.request" (outbox aggregatetype "payment",
// routed by the orchestrator's connector) and its replies on
// "payment.response" (the participant's connector); every message is keyed
// by the saga id. A request is the step's payload R as a JSON object plus
// "type": "REQUEST" or "CANCEL" (its compensation), with the same type in
// the outbox type column (Kafka header eventType). A reply is
// {"status": …} with the step's reply type as eventType.
package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Kind says what a request message asks: the step itself or its
// compensation. It is the outbox type (Kafka header "eventType") and the
// payload's "type".
type Kind string

// The two kinds of request.
const (
	Request Kind = "REQUEST"
	Cancel  Kind = "CANCEL"
)

// Status is a participant's answer, the "status" of a reply.
type Status string

// Step is the contract of one saga step whose request payload is R.
type Step[R any] struct {
	// Name is the step's name in the saga state and its messages' routing:
	// the outbox aggregatetype of requests and replies.
	Name string
	// ReplyType is the outbox type (Kafka header eventType) of replies.
	ReplyType string
	// Succeeded and Failed answer a request (the step took effect, or was
	// refused and changed nothing); Cancelled answers a compensation.
	Succeeded, Failed, Cancelled Status
}

// Info is what a step's contract says without its payload type: what a
// registry, a console or a test lists.
type Info struct {
	Name      string `json:"name"`
	ReplyType string `json:"replyType"`
	Succeeded Status `json:"succeeded"`
	Failed    Status `json:"failed"`
	Cancelled Status `json:"cancelled"`
}

// Info returns the contract without its payload type.
func (s Step[R]) Info() Info {
	return Info{Name: s.Name, ReplyType: s.ReplyType, Succeeded: s.Succeeded, Failed: s.Failed, Cancelled: s.Cancelled}
}

// RequestTopic is the topic of the step's requests: "<name>.request".
func (i Info) RequestTopic() string { return i.Name + ".request" }

// ReplyTopic is the topic of the step's replies: "<name>.response".
func (i Info) ReplyTopic() string { return i.Name + ".response" }

// Statuses lists the three statuses of a reply.
func (i Info) Statuses() []Status { return []Status{i.Succeeded, i.Failed, i.Cancelled} }

// RequestTopic is the topic of the step's requests.
func (s Step[R]) RequestTopic() string { return s.Info().RequestTopic() }

// ReplyTopic is the topic of the step's replies.
func (s Step[R]) ReplyTopic() string { return s.Info().ReplyTopic() }

// EncodeRequest returns the body of a request of kind k: r as a JSON object
// with "type": k added.
func (s Step[R]) EncodeRequest(k Kind, r R) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode %s %s: %w", s.Name, k, err)
	}
	b = bytes.TrimSpace(b)
	if len(b) < 2 || b[0] != '{' {
		return nil, fmt.Errorf("encode %s %s: the payload must be a JSON object", s.Name, k)
	}
	typ, _ := json.Marshal(k) // a string: cannot fail
	sep := `,"type":`
	if len(b) == 2 { // {}
		sep = `"type":`
	}
	out := make([]byte, 0, len(b)+len(sep)+len(typ))
	out = append(append(append(out, b[:len(b)-1]...), sep...), typ...)
	return append(out, '}'), nil
}

// ErrBadMessage reports a message that does not follow the contract: it
// can never be applied.
var ErrBadMessage = errors.New("message does not follow the step's contract")

// DecodeRequest reads the body of a request of kind k into R. The payload's
// own "type", if any, must agree with k.
func (s Step[R]) DecodeRequest(k Kind, body []byte) (R, error) {
	var r R
	if k != Request && k != Cancel {
		return r, fmt.Errorf("%w: %s request of unknown type %q", ErrBadMessage, s.Name, k)
	}
	var typ struct {
		Type *Kind `json:"type"`
	}
	if err := json.Unmarshal(body, &typ); err != nil {
		return r, fmt.Errorf("%w: %s request: %w", ErrBadMessage, s.Name, err)
	}
	if typ.Type != nil && *typ.Type != k {
		return r, fmt.Errorf("%w: %s request of type %q says %q in its body", ErrBadMessage, s.Name, k, *typ.Type)
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("%w: %s request: %w", ErrBadMessage, s.Name, err)
	}
	return r, nil
}

type reply struct {
	Status Status `json:"status"`
}

// EncodeReply returns the body of a reply saying st.
func (i Info) EncodeReply(st Status) []byte {
	b, _ := json.Marshal(reply{st}) // a struct of one string: cannot fail
	return b
}

// DecodeReply reads a reply's status, which must be one of the step's.
func (i Info) DecodeReply(body []byte) (Status, error) {
	var r reply
	if err := json.Unmarshal(body, &r); err != nil {
		return "", fmt.Errorf("%w: %s reply: %w", ErrBadMessage, i.Name, err)
	}
	for _, st := range i.Statuses() {
		if r.Status == st {
			return st, nil
		}
	}
	return "", fmt.Errorf("%w: %s reply of unknown status %q", ErrBadMessage, i.Name, r.Status)
}
