package saga

// Observer is told of every transition an Orchestrator persists: prev is
// the state before it (the zero State for Start), next the state after it,
// step the step its cause concerns, and cause what made it. It is called
// inside the caller's transaction once the transition's statements
// succeeded, before the transaction commits: a transaction that fails
// after that (its COMMIT, or the caller's own statements) was observed
// though it did not happen, and a retried message is observed again. It
// runs on the caller's goroutine: it must be fast and must not block
// (incrementing counters is what it is for).
type Observer func(prev, next State, step string, cause CauseKind)

func (o *Orchestrator) observe(prev, next State, step string, cause CauseKind) {
	for _, f := range o.observers {
		f(prev, next, step, cause)
	}
}
