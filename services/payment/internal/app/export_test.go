package app

import "github.com/sagabox/sagabox/pkg/consumer"

// Decode is decode, for the fuzz tests.
func (a *App) Decode(m consumer.Message) (request, error) { return a.decode(m) }
