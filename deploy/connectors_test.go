package deploy_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sagabox/sagabox/internal/testenv"
	"github.com/sagabox/sagabox/migrations"
	"github.com/sagabox/sagabox/pkg/outbox"
	"github.com/sagabox/sagabox/pkg/relay"
	"github.com/sagabox/sagabox/registry"
)

// loadConnectors loads debezium/connectors with the relay's own loader: a
// file it refuses is a file whose records the local run would not match.
func loadConnectors(t *testing.T) []relay.Connector {
	t.Helper()
	cs, err := relay.LoadConnectors(filepath.Join(root(t), "debezium", "connectors"))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// connectorFiles returns each file as Kafka Connect receives it: a flat map
// of strings, by connector name.
func connectorFiles(t *testing.T) map[string]map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root(t), "debezium", "connectors", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	for _, f := range files {
		var raw map[string]any
		if err := json.Unmarshal([]byte(readFile(t, f)), &raw); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		cfg := map[string]string{}
		for k, v := range raw {
			s, ok := v.(string)
			if !ok {
				t.Errorf("%s: %s is %T; Kafka Connect configs are string maps", f, k, v)
				continue
			}
			cfg[k] = s
		}
		out[filepath.Base(f[:len(f)-len(".json")])] = cfg
	}
	return out
}

func TestConnectorFiles(t *testing.T) {
	t.Parallel()
	cs := loadConnectors(t)
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	if diff := cmp.Diff(wantConnectors, names); diff != "" {
		t.Errorf("debezium/connectors/*.json (-want +got):\n%s", diff)
	}
	files := connectorFiles(t)
	p := loadCompose(t)
	roles := initRoles(t)
	slots, pubs, prefixes := map[string]string{}, map[string]string{}, map[string]string{}
	validName := regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
	for _, c := range cs {
		t.Run(c.Name, func(t *testing.T) {
			if c.Host != "postgres" || c.Port != 5432 {
				t.Errorf("database %s:%d, want postgres:5432 (the compose service)", c.Host, c.Port)
			}
			if _, ok := p.Services[c.Host]; !ok {
				t.Errorf("database.hostname %q is not a compose service", c.Host)
			}
			r, ok := roles[c.User]
			switch {
			case !ok:
				t.Errorf("database.user %q is not created by init.sql", c.User)
			case r.db != c.DBName:
				t.Errorf("database.dbname %q, but init.sql gives %s the database %q", c.DBName, c.User, r.db)
			case r.password != c.Password:
				t.Errorf("database.password of %s differs from init.sql", c.User)
			}
			if got := files[c.Name]["plugin.name"]; got != "pgoutput" {
				t.Errorf("plugin.name = %q, want pgoutput (built into PostgreSQL)", got)
			}
			// The roles of init.sql are not superusers: a publication FOR ALL
			// TABLES (Debezium's default mode) would be refused.
			if c.PublicationAutocreate != "filtered" {
				t.Errorf("publication.autocreate.mode = %q, want filtered", c.PublicationAutocreate)
			}
			// An idle database's slot holds WAL until the connector confirms a
			// position: heartbeats make Debezium confirm regularly.
			if c.HeartbeatInterval <= 0 {
				t.Errorf("heartbeat.interval.ms is not set")
			}
			if len(c.Tables.IncludeTables) == 0 {
				t.Errorf("table.include.list is empty")
			}
			for key, v := range map[string]string{"slot.name": c.SlotName, "publication.name": c.PublicationName} {
				if !validName.MatchString(v) {
					t.Errorf("%s = %q: want a PostgreSQL name of [a-z0-9_]", key, v)
				}
			}
		})
		for key, seen := range map[string]map[string]string{"slot.name": slots, "publication.name": pubs, "topic.prefix": prefixes} {
			v := map[string]string{"slot.name": c.SlotName, "publication.name": c.PublicationName, "topic.prefix": c.TopicPrefix}[key]
			if other, dup := seen[v]; dup {
				t.Errorf("%s %q is used by both %s and %s", key, v, other, c.Name)
			}
			seen[v] = c.Name
		}
	}
}

// capturedTables lists the tables of a migrated database a connector
// captures, with their columns.
func capturedTables(t *testing.T, pool interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, c relay.Connector) map[string][]string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT table_schema, table_name, column_name FROM information_schema.columns
		WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY table_name, ordinal_position`)
	if err != nil {
		t.Fatal(err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Schema, Table, Column string }])
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, col := range cols {
		if c.Tables.Match(col.Schema, col.Table) {
			out[col.Schema+"."+col.Table] = append(out[col.Schema+"."+col.Table], col.Column)
		}
	}
	return out
}

// TestConnectorColumns checks, on freshly migrated databases, that each
// connector captures exactly its table and that every column its
// EventRouter reads exists.
func TestConnectorColumns(t *testing.T) {
	t.Parallel()
	schemas := map[string]func() migrations.Schema{}
	for _, a := range apps {
		schemas[a.db] = a.schema
	}
	want := map[string][]string{
		"customer-outbox": {"public.outboxevent"}, "order-outbox": {"public.outboxevent"},
		"order-sagastate": {"public.sagastate"}, "payment-outbox": {"public.outboxevent"},
	}
	for _, c := range loadConnectors(t) {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			schema, ok := schemas[c.DBName]
			if !ok {
				t.Fatalf("database.dbname %q is no service's database", c.DBName)
			}
			tables := capturedTables(t, testenv.Pool(t, testenv.Database(t, schema())), c)
			names := make([]string, 0, len(tables))
			for n := range tables {
				names = append(names, n)
			}
			sort.Strings(names)
			if diff := cmp.Diff(want[c.Name], names); diff != "" {
				t.Errorf("captured tables (-want +got):\n%s", diff)
			}
			if c.Transform != relay.TransformEventRouter {
				return
			}
			r := c.EventRouter
			read := []string{r.FieldEventID, r.FieldEventKey, r.FieldEventPayload, r.RouteByField}
			if r.FieldEventTimestamp != "" {
				read = append(read, r.FieldEventTimestamp)
			}
			for _, p := range r.Placements {
				if r.ErrorOnMissing {
					read = append(read, p.Column)
				}
			}
			for table, cols := range tables {
				for _, col := range read {
					if !slices.Contains(cols, col) {
						t.Errorf("EventRouter column %q is not a column of %s (%v)", col, table, cols)
					}
				}
			}
		})
	}
}

// outboxTable describes the outbox table the migrations create, for routing.
var outboxTable = relay.Table{Schema: "public", Name: "outboxevent", Key: []string{"id"}, Columns: []relay.Column{
	{Name: "id", Type: 2950, TypeMod: -1}, {Name: "aggregatetype", Type: 25, TypeMod: -1},
	{Name: "aggregateid", Type: 25, TypeMod: -1}, {Name: "type", Type: 25, TypeMod: -1},
	{Name: "payload", Type: 3802, TypeMod: -1}, {Name: "traceparent", Type: 25, TypeMod: -1},
	{Name: "tracestate", Type: 25, TypeMod: -1}, {Name: "created_at", Type: 1184, TypeMod: -1},
}}

// routeEvent returns the topic connector c gives to event e.
func routeEvent(t *testing.T, c relay.Connector, e outbox.Event) string {
	t.Helper()
	s := func(v string) *string { return &v }
	row := relay.Row{
		"id": s(uuid.NewString()), "aggregatetype": s(e.AggregateType), "aggregateid": s(e.AggregateID), "type": s(e.Type),
		"payload": s(string(e.Payload)), "traceparent": nil, "tracestate": nil, "created_at": s("2024-05-01 12:00:00+00"),
	}
	recs, err := c.Route(relay.Change{Table: outboxTable, Op: relay.OpCreate, After: row, At: time.Now()})
	if err != nil || len(recs) != 1 {
		t.Fatalf("%s: route %s: %v %v", c.Name, e.AggregateType, recs, err)
	}
	return recs[0].Topic
}

// TestTopics follows each saga step through the real code: the services'
// topic lists (what each consumes), the events the orchestrator and the
// participants write (aggregatetype = the step name, for requests and
// replies alike) and the connectors' routing. Every request must reach the one
// participant consuming it, every reply the orchestrator, and every topic a
// service consumes must be produced by a connector.
func TestTopics(t *testing.T) {
	t.Parallel()
	connectors := map[string]relay.Connector{} // database → its outbox connector
	var sagastate *relay.Connector
	for _, c := range loadConnectors(t) {
		if c.Transform == relay.TransformEventRouter {
			connectors[c.DBName] = c
		} else {
			sagastate = &c
		}
	}
	consumers := map[string]string{} // topic → service
	var orchestrator registry.Component
	for _, svc := range registry.Services() {
		for _, topic := range svc.Service().Topics {
			if other, dup := consumers[topic]; dup {
				t.Errorf("topic %s is consumed by both %s and %s", topic, other, svc.Name)
			}
			consumers[topic] = svc.Name
			if len(topic) > len(".response") && topic[len(topic)-len(".response"):] == ".response" {
				orchestrator = svc
			}
		}
	}
	if orchestrator.Name != "order" {
		t.Fatalf("the service consuming replies is %q, want order", orchestrator.Name)
	}
	produced := map[string]bool{}
	sagaID := uuid.New()
	for _, replyTopic := range orchestrator.Service().Topics {
		step := replyTopic[:len(replyTopic)-len(".response")]
		request := routeEvent(t, connectors[orchestrator.Database],
			outbox.Event{AggregateType: step, AggregateID: sagaID.String(), Type: "REQUEST", Payload: []byte(`{}`)})
		produced[request] = true
		participant, ok := consumers[request]
		if !ok {
			t.Errorf("step %s: request topic %s is consumed by no service", step, request)
			continue
		}
		var db string
		for _, svc := range registry.Services() {
			if svc.Name == participant {
				db = svc.Database
			}
		}
		c, ok := connectors[db]
		if !ok {
			t.Errorf("step %s: participant %s's database %s has no outbox connector", step, participant, db)
			continue
		}
		// What pkg/participant writes to answer: aggregatetype = the step.
		reply := routeEvent(t, c, outbox.Event{AggregateType: step, AggregateID: sagaID.String(), Type: "UPDATED", Payload: []byte(`{"status":"OK"}`)})
		produced[reply] = true
		if reply != replyTopic {
			t.Errorf("step %s: %s's reply goes to %s, but the orchestrator consumes %s", step, participant, reply, replyTopic)
		}
	}
	for topic, svc := range consumers {
		if !produced[topic] {
			t.Errorf("%s consumes %s, which no connector produces", svc, topic)
		}
	}
	if sagastate == nil {
		t.Fatal("no ExtractNewRecordState connector for the saga log")
	}
	recs, err := sagastate.Route(relay.Change{Table: relay.Table{Schema: "public", Name: "sagastate"}, Op: relay.OpCreate,
		After: relay.Row{"id": nil}, At: time.Now()})
	if err != nil || len(recs) != 1 || recs[0].Topic != "sagas.public.sagastate" {
		t.Errorf("order-sagastate routes the saga log to %v (%v), want sagas.public.sagastate", recs, err)
	}
}
