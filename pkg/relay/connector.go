package relay

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Transform class names a connector may use. Exactly one transform per
// connector is supported.
const (
	// TransformEventRouter routes outbox rows: topic from a column, key,
	// value and headers from other columns.
	TransformEventRouter = "io.debezium.transforms.outbox.EventRouter"
	// TransformExtractNewRecordState emits the new state of each row (used
	// for the sagastate table).
	TransformExtractNewRecordState = "io.debezium.transforms.ExtractNewRecordState"
)

// Converter classes the relay implements (key.converter, value.converter).
const (
	StringConverter = "org.apache.kafka.connect.storage.StringConverter"
	JSONConverter   = "org.apache.kafka.connect.json.JsonConverter"
)

// Debezium's defaults for the settings the relay reads.
const (
	DefaultSlotName        = "debezium"
	DefaultPublicationName = "dbz_publication"
	defaultPort            = 5432
)

// Snapshot modes (snapshot.mode) the relay implements.
const (
	// SnapshotInitial publishes the captured tables' rows when the connector
	// starts without a completed snapshot (Debezium's default).
	SnapshotInitial = "initial"
	// SnapshotAlways publishes them at every start.
	SnapshotAlways = "always"
	// SnapshotNoData never does: only changes streamed from the slot.
	SnapshotNoData = "no_data"
)

// Connector is a Debezium Postgres connector configuration (one file in
// debezium/connectors/) as the relay implements it: where the database is,
// which slot and publication carry the changes, which tables are captured
// and how their rows become Kafka records. The same file configures Debezium
// in Docker; LoadConnector refuses settings the relay does not implement
// rather than publish something else.
type Connector struct {
	// Name is the connector name: the file name without ".json".
	Name string
	// Host, Port, User, Password and DBName come from database.*.
	Host     string
	Port     int
	User     string
	Password string
	DBName   string
	// SlotName is the logical replication slot (slot.name, default
	// "debezium"). Slots are cluster-wide: two relays must never share one.
	SlotName string
	// PublicationName is the pgoutput publication (publication.name,
	// default "dbz_publication").
	PublicationName string
	// PublicationAutocreate is publication.autocreate.mode: "all_tables"
	// (Debezium's default), "filtered" or "disabled".
	PublicationAutocreate string
	// TopicPrefix is topic.prefix: the connector's logical name, first part
	// of ExtractNewRecordState's topics and of the heartbeat topic.
	TopicPrefix string
	// Tables selects the captured tables (schema/table include/exclude
	// lists, case-insensitive regular expressions matching whole names).
	Tables TableFilter
	// SnapshotMode is snapshot.mode: SnapshotInitial (default),
	// SnapshotAlways or SnapshotNoData.
	SnapshotMode string
	// HeartbeatInterval is heartbeat.interval.ms (0, the default, is off);
	// HeartbeatTopic is "<heartbeat.topics.prefix>.<topic.prefix>".
	HeartbeatInterval time.Duration
	HeartbeatTopic    string
	// ExtendedHeaders is extended.headers.enabled (default true): every
	// change record carries the __debezium.context.* headers.
	ExtendedHeaders bool
	// Skipped holds the operations of skipped.operations (default: t,
	// truncates): changes of those operations are not published while
	// streaming (Debezium's EventDispatcher drops them, a delete's
	// tombstone with it); a snapshot's reads are not affected. The relay
	// never publishes truncates, so t is always among them.
	Skipped map[Op]bool
	// TombstonesOnDelete is tombstones.on.delete (default true): the
	// connector follows a delete by a tombstone, which the transforms drop
	// (ExtractNewRecordState's rewrite-with-tombstone mode keeps it).
	TombstonesOnDelete bool
	// Key and Value are the key.converter and value.converter.
	Key, Value Converter
	// Transform is the class of the connector's only transform, one of
	// TransformEventRouter or TransformExtractNewRecordState.
	Transform string
	// EventRouter holds the EventRouter options (zero for the other
	// transform); Unwrap those of ExtractNewRecordState.
	EventRouter EventRouter
	Unwrap      ExtractNewRecordState

	values valueOptions
}

// Converter is a key or value converter of the Connect worker.
type Converter struct {
	// Class is StringConverter or JSONConverter.
	Class string
	// DecimalNumeric is JsonConverter's decimal.format=NUMERIC (default
	// BASE64). JsonConverter's schemas.enable must be false.
	DecimalNumeric bool
}

// TableFilter is Debezium's table selection: schema.include.list or
// schema.exclude.list, then table.include.list or table.exclude.list. Each
// entry is a regular expression matched, case-insensitively, against the
// whole schema name or the whole "schema.table" name.
type TableFilter struct {
	IncludeSchemas, ExcludeSchemas []string
	IncludeTables, ExcludeTables   []string

	includeSchemas, excludeSchemas, includeTables, excludeTables []*regexp.Regexp
}

// Match reports whether the table schema.table is captured. PostgreSQL's
// system schemas never are.
func (f TableFilter) Match(schema, table string) bool {
	if schema == "pg_catalog" || schema == "information_schema" || strings.HasPrefix(schema, "pg_") {
		return false
	}
	any := func(res []*regexp.Regexp, s string) bool {
		for _, re := range res {
			if re.MatchString(s) {
				return true
			}
		}
		return false
	}
	if f.includeSchemas == nil && len(f.IncludeSchemas) > 0 {
		f = f.compiled()
	}
	if len(f.includeSchemas) > 0 && !any(f.includeSchemas, schema) {
		return false
	}
	if any(f.excludeSchemas, schema) {
		return false
	}
	name := schema + "." + table
	if len(f.includeTables) > 0 {
		return any(f.includeTables, name)
	}
	return !any(f.excludeTables, name)
}

// compiled returns f with its lists compiled; entries that do not compile
// are dropped (LoadConnector reports them).
func (f TableFilter) compiled() TableFilter {
	compile := func(list []string) []*regexp.Regexp {
		var out []*regexp.Regexp
		for _, s := range list {
			if re, err := compileJavaRegex(s, true, true); err == nil {
				out = append(out, re)
			}
		}
		return out
	}
	f.includeSchemas, f.excludeSchemas = compile(f.IncludeSchemas), compile(f.ExcludeSchemas)
	f.includeTables, f.excludeTables = compile(f.IncludeTables), compile(f.ExcludeTables)
	return f
}

// LoadConnectors loads every *.json connector file in dir, sorted by name.
func LoadConnectors(dir string) ([]Connector, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("list connectors in %s: %w", dir, err)
	}
	sort.Strings(paths)
	if len(paths) == 0 {
		return nil, fmt.Errorf("list connectors in %s: no *.json files", dir)
	}
	cs := make([]Connector, 0, len(paths))
	for _, p := range paths {
		c, err := LoadConnector(p)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// LoadConnector parses the connector file at path: a flat Kafka Connect
// configuration map (or {"name": ..., "config": {...}}, as posted to the
// Kafka Connect REST API). Keys that do not change the records are ignored;
// a setting that would make Debezium publish something the relay does not
// reproduce is an error. Every error names the file and the key.
func LoadConnector(path string) (Connector, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Connector{}, fmt.Errorf("load connector: %w", err)
	}
	name := strings.TrimSuffix(filepath.Base(path), ".json")
	cfg, err := decodeConfig(raw)
	if err != nil {
		return Connector{}, fmt.Errorf("load connector %s: %w", path, err)
	}
	c, err := ParseConnector(name, cfg)
	if err != nil {
		return Connector{}, fmt.Errorf("load connector %s: %w", path, err)
	}
	return c, nil
}

// ParseConnector builds a Connector from a flat configuration map; name is
// the connector name. It reports every problem at once.
func ParseConnector(name string, m map[string]string) (Connector, error) {
	cfg := &config{m: m}
	c := Connector{
		Name:     name,
		Host:     cfg.required("database.hostname"),
		User:     cfg.required("database.user"),
		Password: cfg.str("database.password", ""),
		DBName:   cfg.required("database.dbname"),
		// slot.name and publication.name become SQL identifiers: Debezium
		// uses them as given.
		SlotName:              cfg.str("slot.name", DefaultSlotName),
		PublicationName:       cfg.str("publication.name", DefaultPublicationName),
		PublicationAutocreate: cfg.enum("publication.autocreate.mode", "all_tables", "all_tables", "filtered", "disabled"),
		TopicPrefix:           cfg.required("topic.prefix"),
		Port:                  int(cfg.integer("database.port", defaultPort)),
		SnapshotMode:          cfg.enum("snapshot.mode", SnapshotInitial, SnapshotInitial, SnapshotAlways, SnapshotNoData, "never", "when_needed"),
		ExtendedHeaders:       cfg.boolean("extended.headers.enabled", true),
		TombstonesOnDelete:    cfg.boolean("tombstones.on.delete", true),
		Skipped:               skippedOperations(cfg),
		values: valueOptions{
			decimalMode:       cfg.enum("decimal.handling.mode", "precise", "precise", "double", "string"),
			timePrecisionMode: cfg.enum("time.precision.mode", "adaptive", "adaptive", "adaptive_time_microseconds"),
			binaryMode:        cfg.enum("binary.handling.mode", "bytes", "bytes", "base64", "base64-url-safe", "hex"),
		},
	}
	switch c.SnapshotMode { // deprecated aliases
	case "never":
		c.SnapshotMode = SnapshotNoData
	case "when_needed":
		c.SnapshotMode = SnapshotInitial
	}
	if c.Port <= 0 || c.Port > 65535 {
		cfg.errorf("database.port", "invalid port %q", cfg.str("database.port", ""))
	}
	if cls := strings.TrimSpace(cfg.str("connector.class", "")); cls != "" && cls != "io.debezium.connector.postgresql.PostgresConnector" {
		cfg.errorf("connector.class", "unsupported %q", cls)
	}
	cfg.refuse("plugin.name", "only pgoutput", "pgoutput")
	if ms := cfg.integer("heartbeat.interval.ms", 0); ms > 0 {
		c.HeartbeatInterval = time.Duration(ms) * time.Millisecond
	} else if ms < 0 {
		cfg.errorf("heartbeat.interval.ms", "negative")
	}
	c.HeartbeatTopic = cfg.str("heartbeat.topics.prefix", "__debezium-heartbeat") + "." + c.TopicPrefix
	c.Tables = parseTableFilter(cfg)
	c.Key = parseConverter(cfg, "key.converter")
	c.Value = parseConverter(cfg, "value.converter")
	refuseUnimplemented(cfg)
	c.parseTransform(cfg)
	return c, cfg.err()
}

func parseTableFilter(cfg *config) TableFilter {
	f := TableFilter{
		IncludeSchemas: splitRegexList(cfg.str("schema.include.list", "")),
		ExcludeSchemas: splitRegexList(cfg.str("schema.exclude.list", "")),
		IncludeTables:  splitRegexList(cfg.str("table.include.list", "")),
		ExcludeTables:  splitRegexList(cfg.str("table.exclude.list", "")),
	}
	if len(f.IncludeSchemas) > 0 && len(f.ExcludeSchemas) > 0 {
		cfg.errorf("schema.exclude.list", "cannot be used with schema.include.list")
	}
	if len(f.IncludeTables) > 0 && len(f.ExcludeTables) > 0 {
		cfg.errorf("table.exclude.list", "cannot be used with table.include.list")
	}
	for key, list := range map[string][]string{
		"schema.include.list": f.IncludeSchemas, "schema.exclude.list": f.ExcludeSchemas,
		"table.include.list": f.IncludeTables, "table.exclude.list": f.ExcludeTables,
	} {
		for _, s := range list {
			if _, err := compileJavaRegex(s, true, true); err != nil {
				cfg.errorf(key, "entry %q: %v", s, err)
			}
		}
	}
	return f.compiled()
}

func parseConverter(cfg *config, key string) Converter {
	cls := strings.TrimSpace(cfg.str(key, ""))
	sub := &config{m: cfg.m, prefix: key + "."}
	defer func() { cfg.errs = append(cfg.errs, sub.errs...) }()
	switch cls {
	case StringConverter:
		sub.refuse("encoding", "only UTF-8", "utf8", "utf-8")
		return Converter{Class: cls}
	case JSONConverter:
		if sub.boolean("schemas.enable", true) {
			sub.errorf("schemas.enable", "must be false: the relay writes JSON without the schema envelope")
		}
		numeric := sub.enum("decimal.format", "base64", "base64", "numeric") == "numeric"
		return Converter{Class: cls, DecimalNumeric: numeric}
	case "":
		cfg.errorf(key, "missing: the Connect worker's default converter is not known to the relay; set %s or %s", StringConverter, JSONConverter)
	default:
		cfg.errorf(key, "unsupported %q (the relay implements %s and %s)", cls, StringConverter, JSONConverter)
	}
	return Converter{}
}

// refuseUnimplemented reports settings that change the records in ways the
// relay does not reproduce.
func refuseUnimplemented(cfg *config) {
	for _, k := range []string{
		"column.include.list", "column.exclude.list", "message.key.columns", "column.propagate.source.type",
		"datatype.propagate.source.type", "converters", "hstore.handling.mode", "interval.handling.mode",
		"money.fraction.digits", "snapshot.select.statement.overrides", "heartbeat.action.query",
		"signal.data.collection", "post.processors",
	} {
		if v, ok := cfg.m[k]; ok && strings.TrimSpace(v) != "" {
			cfg.errorf(k, "not supported by the relay")
		}
	}
	for k := range cfg.m {
		if strings.HasPrefix(k, "column.mask.") || strings.HasPrefix(k, "column.truncate.") {
			cfg.errorf(k, "not supported by the relay")
		}
	}
	cfg.refuse("header.converter", "only SimpleHeaderConverter", "org.apache.kafka.connect.storage.simpleheaderconverter")
	cfg.refuse("topic.naming.strategy", "only the default topic names", "io.debezium.schema.schematopicnamingstrategy")
	cfg.refuse("topic.delimiter", "only \".\"", ".")
	cfg.refuse("include.unknown.datatypes", "unknown types are refused", "false")
	cfg.refuse("provide.transaction.metadata", "no transaction topic", "false")
	cfg.refuse("publish.via.partition.root", "no partitioned-table routing", "false")
	cfg.refuse("slot.drop.on.stop", "the relay keeps its slot", "false")
	cfg.refuse("errors.tolerance", "a record that fails stops the relay", "none")
	cfg.refuse("field.name.adjustment.mode", "field names as in the table", "none")
	cfg.refuse("schema.name.adjustment.mode", "field names as in the table", "none")
	cfg.refuse("unavailable.value.placeholder", "the default placeholder", UnavailableValue)
}

func (c *Connector) parseTransform(cfg *config) {
	var names []string
	for n := range strings.SplitSeq(cfg.str("transforms", ""), ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	if len(names) != 1 {
		cfg.errorf("transforms", "want exactly one transform (%s or %s), got %d",
			TransformEventRouter, TransformExtractNewRecordState, len(names))
		return
	}
	t := &config{m: cfg.m, prefix: "transforms." + names[0] + "."}
	defer func() { cfg.errs = append(cfg.errs, t.errs...) }()
	t.refuse("predicate", "transform predicates")
	t.refuse("negate", "transform predicates", "false")
	c.Transform = strings.TrimSpace(t.str("type", ""))
	switch c.Transform {
	case TransformEventRouter:
		c.EventRouter = parseEventRouter(t)
	case TransformExtractNewRecordState:
		c.Unwrap = parseExtractNewRecordState(t)
	case "":
		t.errorf("type", "missing")
	default:
		t.errorf("type", "unsupported transform %q (want %s or %s)", c.Transform, TransformEventRouter, TransformExtractNewRecordState)
	}
}

// ConnString returns a postgres URL for the connector's database.* settings
// (sslmode=disable). Callers running outside Docker usually replace the host.
func (c Connector) ConnString() string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(c.User, c.Password),
		Host:     net.JoinHostPort(c.Host, strconv.Itoa(c.port())),
		Path:     "/" + c.DBName,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

func (c Connector) port() int {
	if c.Port == 0 {
		return defaultPort
	}
	return c.Port
}

// skippedOperations reads skipped.operations: a comma-separated list of c
// (inserts), u (updates), d (deletes) and t (truncates), or none; the
// default is t. The relay publishes no truncate, so a list without t
// (none included) is refused.
func skippedOperations(cfg *config) map[Op]bool {
	ops := map[Op]bool{opTruncate: true}
	v := strings.ToLower(strings.TrimSpace(cfg.str("skipped.operations", "t")))
	if v == "none" {
		cfg.errorf("skipped.operations", "not supported by the relay (it never publishes truncates: keep t in the list)")
		return ops
	}
	ops = map[Op]bool{}
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		if len(item) != 1 || !strings.Contains("cudt", item) {
			cfg.errorf("skipped.operations", "unknown operation %q (want c, u, d, t or none)", item)
			continue
		}
		ops[Op(item[0])] = true
	}
	if !ops[opTruncate] {
		cfg.errorf("skipped.operations", "not supported by the relay (it never publishes truncates: keep t in the list)")
	}
	return ops
}
