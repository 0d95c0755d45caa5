package relay_test

import (
	"path/filepath"
	"testing"

	"github.com/sagabox/sagabox/pkg/relay"
)

// route.topic.regex is a java.util.regex: its "." matches no line
// terminator, so an aggregatetype with one is not matched whole and stays
// the topic as it is (RegexRouter), as Debezium publishes it. Go's "."
// excludes only \n; FuzzRouteOutboxRow found the difference with \r.
func TestRouteTopicRegexDotIsJavas(t *testing.T) {
	t.Parallel()
	c, err := relay.LoadConnector(filepath.Join(connectorsDir, "order-outbox.json"))
	if err != nil {
		t.Fatal(err)
	}
	for aggType, want := range map[string]string{
		"payment": "payment.request", "a\tb": "a\tb.request", "a b\u00a0c": "a b\u00a0c.request",
		"a\nb": "a\nb", "a\rb": "a\rb", "a\u0085b": "a\u0085b", "a\u2028b": "a\u2028b", "a\u2029b": "a\u2029b", "\r": "\r",
	} {
		row := outboxRow()
		row["aggregatetype"] = str(aggType)
		recs, err := c.Route(insert(outboxTable, row))
		if err != nil || len(recs) != 1 || recs[0].Topic != want {
			t.Errorf("aggregatetype %q routed to %v (%v), want topic %q", aggType, recs, err, want)
		}
	}
}
