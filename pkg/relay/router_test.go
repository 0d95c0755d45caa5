package relay_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/sagabox/sagabox/pkg/relay"
)

const connectorsDir = "../../debezium/connectors"

func str(s string) *string { return &s }

var outboxTable = relay.Table{Schema: "public", Name: "outboxevent"}

func outboxRow() relay.Row {
	return relay.Row{
		"id":            str("8f5bd1c4-0a5e-4f43-9a57-3d3cf1f3b1d2"),
		"aggregatetype": str("credit-approval"),
		"aggregateid":   str("saga-1"),
		"type":          str("REQUEST"),
		"payload":       str(`{"amount": 10}`),
		"traceparent":   str("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
		"tracestate":    nil,
		"created_at":    str("2024-05-01 12:00:00.123456+00"),
	}
}

func TestLoadConnectors(t *testing.T) {
	t.Parallel()
	cs, err := relay.LoadConnectors(connectorsDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	if diff := cmp.Diff([]string{"customer-outbox", "order-outbox", "order-sagastate", "payment-outbox"}, names); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	wantOrder := relay.Connector{
		Name: "order-outbox", Host: "postgres", Port: 5432, User: "orderuser", Password: "orderpw", DBName: "orderdb",
		SlotName: "order_outbox", PublicationName: "order_outbox", Tables: []string{"public.outboxevent"},
		TopicPrefix: "order", Transform: relay.TransformEventRouter,
		EventRouter: relay.EventRouter{
			RouteByField: "aggregatetype", RouteTopicRegex: "(?P<routedByValue>.*)",
			RouteTopicReplacement: "${routedByValue}.request",
			FieldEventID:          "id", FieldEventKey: "aggregateid", FieldEventPayload: "payload",
			Headers: []relay.Placement{
				{Column: "type", Header: "eventType"},
				{Column: "traceparent", Header: "traceparent"},
				{Column: "tracestate", Header: "tracestate"},
			},
			OnInvalidOp: relay.InvalidOpWarn,
		},
	}
	if diff := cmp.Diff(wantOrder, cs[1], cmpopts.IgnoreUnexported(relay.EventRouter{})); diff != "" {
		t.Errorf("order-outbox (-want +got):\n%s", diff)
	}
	wantSaga := relay.Connector{
		Name: "order-sagastate", Host: "postgres", Port: 5432, User: "orderuser", Password: "orderpw", DBName: "orderdb",
		SlotName: "order_sagastate", PublicationName: "order_sagastate", Tables: []string{"public.sagastate"},
		TopicPrefix: "sagas", Transform: relay.TransformExtractNewRecordState,
	}
	if diff := cmp.Diff(wantSaga, cs[2], cmpopts.IgnoreUnexported(relay.EventRouter{})); diff != "" {
		t.Errorf("order-sagastate (-want +got):\n%s", diff)
	}
	if got, want := cs[1].ConnString(), "postgres://orderuser:orderpw@postgres:5432/orderdb?sslmode=disable"; got != want {
		t.Errorf("ConnString = %q, want %q", got, want)
	}
}

func TestRouteOutboxConnectors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		connector string
		topic     string
	}{
		{"order-outbox", "credit-approval.request"},
		{"customer-outbox", "credit-approval.response"},
		{"payment-outbox", "credit-approval.response"},
	} {
		t.Run(tc.connector, func(t *testing.T) {
			t.Parallel()
			c, err := relay.LoadConnector(filepath.Join(connectorsDir, tc.connector+".json"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Route(outboxTable, outboxRow())
			if err != nil {
				t.Fatal(err)
			}
			want := relay.Record{
				Topic: tc.topic,
				Key:   []byte("saga-1"),
				Value: []byte(`{"amount": 10}`),
				Headers: []relay.Header{
					{Key: "id", Value: []byte("8f5bd1c4-0a5e-4f43-9a57-3d3cf1f3b1d2")},
					{Key: "eventType", Value: []byte("REQUEST")},
					{Key: "traceparent", Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")},
					{Key: "tracestate", Value: nil}, // NULL column: header present, null value
				},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
		})
	}
}

// writeConnector writes a connector file with the given EventRouter options
// on top of a minimal valid configuration.
func writeConnector(t *testing.T, extra map[string]string) string {
	t.Helper()
	cfg := map[string]string{
		"database.hostname":      "db",
		"database.user":          "u",
		"database.dbname":        "d",
		"topic.prefix":           "p",
		"table.include.list":     "public.outboxevent",
		"transforms":             "outbox",
		"transforms.outbox.type": "io.debezium.transforms.outbox.EventRouter",
	}
	for k, v := range extra {
		if v == "" {
			delete(cfg, k)
		} else {
			cfg[k] = v
		}
	}
	var b strings.Builder
	b.WriteString("{")
	first := true
	for k, v := range cfg {
		if !first {
			b.WriteString(",")
		}
		first = false
		b.WriteString(`"` + k + `":"` + strings.ReplaceAll(v, `\`, `\\`) + `"`)
	}
	b.WriteString("}")
	path := filepath.Join(t.TempDir(), "test-connector.json")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRouteEventRouterOptions(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		opts map[string]string
		row  func(relay.Row)
		want relay.Record
	}{
		"defaults": {
			want: relay.Record{
				Topic: "outbox.event.credit-approval", Key: []byte("saga-1"), Value: []byte(`{"amount": 10}`),
				Headers: []relay.Header{{Key: "id", Value: []byte("8f5bd1c4-0a5e-4f43-9a57-3d3cf1f3b1d2")}},
			},
		},
		"custom regex and replacement": {
			opts: map[string]string{
				"transforms.outbox.route.topic.regex":       `(?<kind>[a-z]+)-(?<rest>.*)`,
				"transforms.outbox.route.topic.replacement": `events.${rest}.$1`,
			},
			want: relay.Record{
				Topic: "events.approval.credit", Key: []byte("saga-1"), Value: []byte(`{"amount": 10}`),
				Headers: []relay.Header{{Key: "id", Value: []byte("8f5bd1c4-0a5e-4f43-9a57-3d3cf1f3b1d2")}},
			},
		},
		"regex replaces the first match only": {
			opts: map[string]string{
				"transforms.outbox.route.topic.regex":       `approval`,
				"transforms.outbox.route.topic.replacement": `check`,
			},
			want: relay.Record{
				Topic: "credit-check", Key: []byte("saga-1"), Value: []byte(`{"amount": 10}`),
				Headers: []relay.Header{{Key: "id", Value: []byte("8f5bd1c4-0a5e-4f43-9a57-3d3cf1f3b1d2")}},
			},
		},
		"custom fields and placements": {
			opts: map[string]string{
				"transforms.outbox.route.by.field":                    "type",
				"transforms.outbox.route.topic.replacement":           "t.${routedByValue}",
				"transforms.outbox.table.field.event.id":              "aggregateid",
				"transforms.outbox.table.field.event.key":             "id",
				"transforms.outbox.table.field.event.payload":         "type",
				"transforms.outbox.table.fields.additional.placement": "aggregatetype:header, created_at:header:at",
			},
			want: relay.Record{
				Topic: "t.REQUEST", Key: []byte("8f5bd1c4-0a5e-4f43-9a57-3d3cf1f3b1d2"), Value: []byte("REQUEST"),
				Headers: []relay.Header{
					{Key: "id", Value: []byte("saga-1")},
					{Key: "aggregatetype", Value: []byte("credit-approval")},
					{Key: "at", Value: []byte("2024-05-01 12:00:00.123456+00")},
				},
			},
		},
		"null payload is a tombstone": {
			row: func(r relay.Row) { r["payload"] = nil },
			want: relay.Record{
				Topic: "outbox.event.credit-approval", Key: []byte("saga-1"),
				Headers: []relay.Header{{Key: "id", Value: []byte("8f5bd1c4-0a5e-4f43-9a57-3d3cf1f3b1d2")}},
			},
		},
		"empty payload is a tombstone when configured": {
			opts: map[string]string{"transforms.outbox.route.tombstone.on.empty.payload": "true"},
			row:  func(r relay.Row) { r["payload"] = str("") },
			want: relay.Record{
				Topic: "outbox.event.credit-approval", Key: []byte("saga-1"),
				Headers: []relay.Header{{Key: "id", Value: []byte("8f5bd1c4-0a5e-4f43-9a57-3d3cf1f3b1d2")}},
			},
		},
		"null key": {
			row: func(r relay.Row) { r["aggregateid"] = nil },
			want: relay.Record{
				Topic: "outbox.event.credit-approval", Value: []byte(`{"amount": 10}`),
				Headers: []relay.Header{{Key: "id", Value: []byte("8f5bd1c4-0a5e-4f43-9a57-3d3cf1f3b1d2")}},
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := relay.LoadConnector(writeConnector(t, tc.opts))
			if err != nil {
				t.Fatal(err)
			}
			row := outboxRow()
			if tc.row != nil {
				tc.row(row)
			}
			got, err := c.Route(outboxTable, row)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRouteErrors(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		table relay.Table
		row   func(relay.Row)
		want  string
	}{
		"missing route field": {row: func(r relay.Row) { delete(r, "aggregatetype") }, want: "route field aggregatetype: no such column"},
		"null route field":    {row: func(r relay.Row) { r["aggregatetype"] = nil }, want: "route field aggregatetype: is NULL"},
		"missing key column":  {row: func(r relay.Row) { delete(r, "aggregateid") }, want: "table.field.event.key aggregateid: no such column"},
		"missing placement":   {row: func(r relay.Row) { delete(r, "type") }, want: "table.fields.additional.placement type: no such column"},
		"table not captured":  {table: relay.Table{Schema: "public", Name: "other"}, want: "public.other row: table not in table.include.list"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := relay.LoadConnector(filepath.Join(connectorsDir, "order-outbox.json"))
			if err != nil {
				t.Fatal(err)
			}
			row := outboxRow()
			if tc.row != nil {
				tc.row(row)
			}
			table := outboxTable
			if tc.table.Name != "" {
				table = tc.table
			}
			_, err = c.Route(table, row)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Route error = %v, want containing %q", err, tc.want)
			}
		})
	}
}

func TestLoadConnectorErrors(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		opts map[string]string
		want string
	}{
		"unsupported transform": {
			opts: map[string]string{"transforms.outbox.type": "org.apache.kafka.connect.transforms.RegexRouter"},
			want: `key transforms.outbox.type: unsupported transform "org.apache.kafka.connect.transforms.RegexRouter"`,
		},
		"two transforms": {
			opts: map[string]string{"transforms": "outbox,route"},
			want: "key transforms: want exactly one transform",
		},
		"no transform": {
			opts: map[string]string{"transforms": ""},
			want: "key transforms: want exactly one transform",
		},
		"envelope placement": {
			opts: map[string]string{"transforms.outbox.table.fields.additional.placement": "type:envelope:eventType"},
			want: `key transforms.outbox.table.fields.additional.placement: placement "type:envelope:eventType": unsupported placement "envelope"`,
		},
		"bad placement": {
			opts: map[string]string{"transforms.outbox.table.fields.additional.placement": "type"},
			want: `placement "type": want column:header[:alias]`,
		},
		"bad regex": {
			opts: map[string]string{"transforms.outbox.route.topic.regex": "(unclosed"},
			want: "key transforms.outbox.route.topic.regex:",
		},
		"bad tombstone flag": {
			opts: map[string]string{"transforms.outbox.route.tombstone.on.empty.payload": "maybe"},
			want: `key transforms.outbox.route.tombstone.on.empty.payload: invalid boolean "maybe"`,
		},
		"missing dbname": {
			opts: map[string]string{"database.dbname": ""},
			want: "key database.dbname: missing",
		},
		"bad port": {
			opts: map[string]string{"database.port": "x"},
			want: `key database.port: invalid port "x"`,
		},
		"bad table": {
			opts: map[string]string{"table.include.list": "outboxevent"},
			want: `key table.include.list: "outboxevent" is not schema.table`,
		},
		"other plugin": {
			opts: map[string]string{"plugin.name": "decoderbufs"},
			want: `key plugin.name: unsupported "decoderbufs"`,
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := writeConnector(t, tc.opts)
			_, err := relay.LoadConnector(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("LoadConnector error = %v, want containing %q and the path", err, tc.want)
			}
		})
	}
}

func TestParsePlacements(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]relay.Placement{
		"":                               nil,
		"type:header:eventType":          {{Column: "type", Header: "eventType"}},
		"type:header":                    {{Column: "type", Header: "type"}},
		" a:header:x , b:header ,":       {{Column: "a", Header: "x"}, {Column: "b", Header: "b"}},
		"traceparent:header:traceparent": {{Column: "traceparent", Header: "traceparent"}},
	} {
		got, err := relay.ParsePlacements(in)
		if err != nil {
			t.Errorf("ParsePlacements(%q): %v", in, err)
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ParsePlacements(%q) (-want +got):\n%s", in, diff)
		}
	}
	for _, in := range []string{"a", "a:envelope:b", "a:partition", ":header:x", "a:header:", "a:header:b:c"} {
		if _, err := relay.ParsePlacements(in); err == nil {
			t.Errorf("ParsePlacements(%q): no error", in)
		}
	}
}

func TestRouteExtractNewRecordState(t *testing.T) {
	t.Parallel()
	c, err := relay.LoadConnector(filepath.Join(connectorsDir, "order-sagastate.json"))
	if err != nil {
		t.Fatal(err)
	}
	table := relay.Table{Schema: "public", Name: "sagastate", Columns: []relay.Column{
		{Name: "id", Type: 2950, Key: true},
		{Name: "type", Type: 25},
		{Name: "payload", Type: 3802},
		{Name: "current_step", Type: 25},
		{Name: "step_status", Type: 3802},
		{Name: "status", Type: 25},
		{Name: "version", Type: 23},
		{Name: "created_at", Type: 1184},
		{Name: "updated_at", Type: 1184},
	}}
	for name, tc := range map[string]struct {
		row  relay.Row
		want relay.Record
	}{
		"started": {
			row: relay.Row{
				"id": str("5f0c4b8e-3c1a-4d1e-9a7e-0c2d9b6f8e11"), "type": str("order-placement"),
				"payload": str(`{"order_id": 1, "note": "<a&b>"}`), "current_step": str("credit-approval"),
				"step_status": str(`{"credit-approval": "STARTED"}`), "status": str("STARTED"), "version": str("0"),
				"created_at": str("2024-05-01 12:00:00.123456+00"), "updated_at": str("2024-05-01 14:30:00+02:30"),
			},
			want: relay.Record{
				Topic: "sagas.public.sagastate",
				Key:   []byte(`{"id":"5f0c4b8e-3c1a-4d1e-9a7e-0c2d9b6f8e11"}`),
				Value: []byte(`{"id":"5f0c4b8e-3c1a-4d1e-9a7e-0c2d9b6f8e11","type":"order-placement",` +
					`"payload":"{\"order_id\": 1, \"note\": \"<a&b>\"}","current_step":"credit-approval",` +
					`"step_status":"{\"credit-approval\": \"STARTED\"}","status":"STARTED","version":0,` +
					`"created_at":"2024-05-01T12:00:00.123456Z","updated_at":"2024-05-01T12:00:00Z"}`),
			},
		},
		"nulls": {
			row: relay.Row{
				"id": str("5f0c4b8e-3c1a-4d1e-9a7e-0c2d9b6f8e11"), "type": nil, "payload": nil, "current_step": nil,
				"step_status": nil, "status": nil, "version": str("12"), "created_at": nil, "updated_at": nil,
			},
			want: relay.Record{
				Topic: "sagas.public.sagastate",
				Key:   []byte(`{"id":"5f0c4b8e-3c1a-4d1e-9a7e-0c2d9b6f8e11"}`),
				Value: []byte(`{"id":"5f0c4b8e-3c1a-4d1e-9a7e-0c2d9b6f8e11","type":null,"payload":null,"current_step":null,` +
					`"step_status":null,"status":null,"version":12,"created_at":null,"updated_at":null}`),
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := c.Route(table, tc.row)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(tc.want.Value), string(got.Value)); diff != "" {
				t.Errorf("value (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRouteExtractNewRecordStateTypes(t *testing.T) {
	t.Parallel()
	c := relay.Connector{Name: "x", Tables: []string{"s.t"}, TopicPrefix: "p", Transform: relay.TransformExtractNewRecordState}
	table := relay.Table{Schema: "s", Name: "t", Columns: []relay.Column{
		{Name: "a", Type: 21}, {Name: "b", Type: 20}, {Name: "c", Type: 16}, {Name: "d", Type: 16},
		{Name: "e", Type: 701}, {Name: "f", Type: 700}, {Name: "g", Type: 1700}, {Name: "h", Type: 114},
	}}
	row := relay.Row{
		"a": str("-3"), "b": str("9007199254740993"), "c": str("t"), "d": str("f"),
		"e": str("1.5e+20"), "f": str("NaN"), "g": str("12.50"), "h": str(`{"x":1}`),
	}
	got, err := c.Route(table, row)
	if err != nil {
		t.Fatal(err)
	}
	want := relay.Record{
		Topic: "p.s.t",
		Value: []byte(`{"a":-3,"b":9007199254740993,"c":true,"d":false,"e":1.5e+20,"f":"NaN","g":"12.50","h":"{\"x\":1}"}`),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("record (-want +got):\n%s", diff)
	}
}
