package saga_test

import (
	"testing"

	"github.com/sagabox/sagabox/pkg/saga"
	"github.com/sagabox/sagabox/pkg/saga/sagatest"
)

// Every path through the definition — every reply, deadline and operator
// action in every order — keeps the saga's invariants (see sagatest.Path),
// and ends SUCCEEDED or ABORTED with every step that succeeded or was
// abandoned compensated: explore all of them exhaustively.
func TestEveryPathKeepsTheInvariants(t *testing.T) {
	t.Parallel()
	r := sagatest.Walk(t, saga.TestDef)
	t.Logf("terminal paths: %v; longest (%d events): %v", r.Paths, len(r.Longest), r.Longest)
}
