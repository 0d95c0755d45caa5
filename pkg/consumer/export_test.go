package consumer

import "github.com/twmb/franz-go/pkg/kgo"

// DecodeRecord is decode, for the fuzz tests.
func DecodeRecord(r *kgo.Record, maxBytes int) (Message, error) { return decode(r, maxBytes) }

// InsertParked is insertParked, for the tests of what identifies a parked
// message.
var InsertParked = insertParked
