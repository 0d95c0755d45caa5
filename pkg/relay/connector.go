package relay

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Transform class names a connector may use. Exactly one transform per
// connector is supported.
const (
	// TransformEventRouter routes outbox rows: topic from a column, key,
	// value and headers from other columns.
	TransformEventRouter = "io.debezium.transforms.outbox.EventRouter"
	// TransformExtractNewRecordState emits the new state of each row as a
	// flat JSON object (used for the sagastate table).
	TransformExtractNewRecordState = "io.debezium.transforms.ExtractNewRecordState"
)

// Debezium's defaults for the settings the relay reads.
const (
	DefaultSlotName              = "debezium"
	DefaultPublicationName       = "dbz_publication"
	defaultPort                  = 5432
	defaultRouteByField          = "aggregatetype"
	defaultRouteTopicRegex       = "(?<routedByValue>.*)"
	defaultRouteTopicReplacement = "outbox.event.${routedByValue}"
	defaultFieldEventID          = "id"
	defaultFieldEventKey         = "aggregateid"
	defaultFieldEventPayload     = "payload"
)

// Behaviours for an UPDATE on an outbox table (table.op.invalid.behavior).
const (
	InvalidOpWarn  = "warn"  // log a warning and skip the change (default)
	InvalidOpError = "error" // log an error and skip the change
	InvalidOpFatal = "fatal" // stop the relay with an error
)

// Connector is the part of a Debezium Postgres connector configuration
// (one file in debezium/connectors/) that the relay needs: where the
// database is, which slot and publication carry the changes, which tables
// are captured and how their rows become Kafka records. The same file
// configures Debezium in Docker, so both paths publish identical records.
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
	// Tables are the captured tables as "schema.table"
	// (table.include.list; Debezium treats entries as regexes, the relay
	// treats them as literal names).
	Tables []string
	// TopicPrefix is topic.prefix: the first part of the topic names that
	// ExtractNewRecordState produces.
	TopicPrefix string
	// Transform is the class of the connector's only transform, one of
	// TransformEventRouter or TransformExtractNewRecordState.
	Transform string
	// EventRouter holds the EventRouter options, with Debezium's defaults
	// filled in. It is the zero value for other transforms.
	EventRouter EventRouter
}

// EventRouter holds the options of Debezium's outbox EventRouter transform.
// The zero value is not usable: LoadConnector fills Debezium's defaults, and
// code constructing one by hand must set every field it relies on.
type EventRouter struct {
	// RouteByField is the column whose value selects the topic
	// (route.by.field, default "aggregatetype").
	RouteByField string
	// RouteTopicRegex is route.topic.regex in Go syntax (Java's
	// "(?<name>...)" groups become "(?P<name>...)"). Default
	// "(?P<routedByValue>.*)".
	RouteTopicRegex string
	// RouteTopicReplacement is route.topic.replacement in Go's
	// regexp.Expand syntax (default "outbox.event.${routedByValue}").
	RouteTopicReplacement string
	// FieldEventID, FieldEventKey and FieldEventPayload name the columns of
	// the "id" header, the Kafka key and the Kafka value
	// (table.field.event.id/key/payload; defaults id, aggregateid, payload).
	FieldEventID      string
	FieldEventKey     string
	FieldEventPayload string
	// Headers lists table.fields.additional.placement entries placed in
	// headers, in configuration order.
	Headers []Placement
	// TombstoneOnEmptyPayload is route.tombstone.on.empty.payload: an empty
	// payload is sent as a tombstone (nil value). A NULL payload always is.
	TombstoneOnEmptyPayload bool
	// OnInvalidOp is table.op.invalid.behavior, what the relay does with an
	// UPDATE of an outbox row: InvalidOpWarn (default), InvalidOpError or
	// InvalidOpFatal.
	OnInvalidOp string

	re *regexp.Regexp // compiled RouteTopicRegex, nil when built by hand
}

// Placement puts the value of Column into the Kafka header Header.
type Placement struct {
	Column string
	Header string
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
// Kafka Connect REST API). Keys the relay does not need are ignored; every
// error names the file and the key.
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
	c, err := parseConnector(name, cfg)
	if err != nil {
		return Connector{}, fmt.Errorf("load connector %s: %w", path, err)
	}
	return c, nil
}

func decodeConfig(raw []byte) (map[string]string, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, fmt.Errorf("decode json: %w", err)
	}
	if inner, ok := top["config"]; ok {
		if err := json.Unmarshal(inner, &top); err != nil {
			return nil, fmt.Errorf("decode json key config: %w", err)
		}
	}
	cfg := make(map[string]string, len(top))
	for k, v := range top {
		var s string
		if err := json.Unmarshal(v, &s); err == nil {
			cfg[k] = s
			continue
		}
		// Numbers and booleans are accepted as their JSON text.
		var scalar any
		if err := json.Unmarshal(v, &scalar); err != nil {
			return nil, fmt.Errorf("key %s: %w", k, err)
		}
		switch scalar.(type) {
		case float64, bool:
			cfg[k] = string(v)
		default:
			return nil, fmt.Errorf("key %s: want a string, got %s", k, v)
		}
	}
	return cfg, nil
}

// parseConnector builds a Connector from a flat configuration map.
func parseConnector(name string, cfg map[string]string) (Connector, error) {
	get := func(key, def string) string {
		if v := strings.TrimSpace(cfg[key]); v != "" {
			return v
		}
		return def
	}
	var errs []error
	require := func(key string) string {
		v := get(key, "")
		if v == "" {
			errs = append(errs, fmt.Errorf("key %s: missing", key))
		}
		return v
	}
	c := Connector{
		Name:            name,
		Host:            require("database.hostname"),
		User:            require("database.user"),
		Password:        cfg["database.password"],
		DBName:          require("database.dbname"),
		SlotName:        get("slot.name", DefaultSlotName),
		PublicationName: get("publication.name", DefaultPublicationName),
		TopicPrefix:     require("topic.prefix"),
		Port:            defaultPort,
	}
	if cls := get("connector.class", ""); cls != "" && cls != "io.debezium.connector.postgresql.PostgresConnector" {
		errs = append(errs, fmt.Errorf("key connector.class: unsupported %q", cls))
	}
	if p := get("plugin.name", "pgoutput"); p != "pgoutput" {
		errs = append(errs, fmt.Errorf("key plugin.name: unsupported %q (only pgoutput)", p))
	}
	if p := get("database.port", ""); p != "" {
		port, err := strconv.Atoi(p)
		if err != nil || port <= 0 || port > 65535 {
			errs = append(errs, fmt.Errorf("key database.port: invalid port %q", p))
		}
		c.Port = port
	}
	for t := range strings.SplitSeq(require("table.include.list"), ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if strings.Count(t, ".") != 1 || strings.HasPrefix(t, ".") || strings.HasSuffix(t, ".") {
			errs = append(errs, fmt.Errorf("key table.include.list: %q is not schema.table", t))
			continue
		}
		c.Tables = append(c.Tables, t)
	}
	if err := c.parseTransform(cfg); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

func (c *Connector) parseTransform(cfg map[string]string) error {
	var names []string
	for n := range strings.SplitSeq(cfg["transforms"], ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	if len(names) != 1 {
		return fmt.Errorf("key transforms: want exactly one transform (%s or %s), got %d",
			TransformEventRouter, TransformExtractNewRecordState, len(names))
	}
	prefix := "transforms." + names[0] + "."
	typeKey := prefix + "type"
	c.Transform = strings.TrimSpace(cfg[typeKey])
	switch c.Transform {
	case TransformExtractNewRecordState:
		return nil
	case TransformEventRouter:
	case "":
		return fmt.Errorf("key %s: missing", typeKey)
	default:
		return fmt.Errorf("key %s: unsupported transform %q (want %s or %s)",
			typeKey, c.Transform, TransformEventRouter, TransformExtractNewRecordState)
	}
	get := func(key, def string) string {
		if v := strings.TrimSpace(cfg[prefix+key]); v != "" {
			return v
		}
		return def
	}
	r := EventRouter{
		RouteByField:          get("route.by.field", defaultRouteByField),
		RouteTopicRegex:       javaRegexToGo(get("route.topic.regex", defaultRouteTopicRegex)),
		RouteTopicReplacement: javaReplacementToGo(get("route.topic.replacement", defaultRouteTopicReplacement)),
		FieldEventID:          get("table.field.event.id", defaultFieldEventID),
		FieldEventKey:         get("table.field.event.key", defaultFieldEventKey),
		FieldEventPayload:     get("table.field.event.payload", defaultFieldEventPayload),
		OnInvalidOp:           get("table.op.invalid.behavior", InvalidOpWarn),
	}
	var errs []error
	re, err := regexp.Compile(r.RouteTopicRegex)
	if err != nil {
		errs = append(errs, fmt.Errorf("key %sroute.topic.regex: %w", prefix, err))
	}
	r.re = re
	headers, err := ParsePlacements(get("table.fields.additional.placement", ""))
	if err != nil {
		errs = append(errs, fmt.Errorf("key %stable.fields.additional.placement: %w", prefix, err))
	}
	r.Headers = headers
	if v := get("route.tombstone.on.empty.payload", "false"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("key %sroute.tombstone.on.empty.payload: invalid boolean %q", prefix, v))
		}
		r.TombstoneOnEmptyPayload = b
	}
	switch r.OnInvalidOp {
	case InvalidOpWarn, InvalidOpError, InvalidOpFatal:
	default:
		errs = append(errs, fmt.Errorf("key %stable.op.invalid.behavior: unsupported %q", prefix, r.OnInvalidOp))
	}
	c.EventRouter = r
	return errors.Join(errs...)
}

// ParsePlacements parses table.fields.additional.placement: a comma list of
// "column:header[:alias]" (alias defaults to the column name). Placements in
// the envelope or the partition are not supported.
func ParsePlacements(s string) ([]Placement, error) {
	var ps []Placement
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		parts := strings.Split(entry, ":")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" {
			return nil, fmt.Errorf("placement %q: want column:header[:alias]", entry)
		}
		if parts[1] != "header" {
			return nil, fmt.Errorf("placement %q: unsupported placement %q (only header)", entry, parts[1])
		}
		p := Placement{Column: parts[0], Header: parts[0]}
		if len(parts) == 3 {
			if parts[2] == "" {
				return nil, fmt.Errorf("placement %q: empty alias", entry)
			}
			p.Header = parts[2]
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// javaNamedGroup matches a Java named group opening, "(?<name>", but not the
// lookbehinds "(?<=" and "(?<!".
var javaNamedGroup = regexp.MustCompile(`\(\?<([A-Za-z][A-Za-z0-9]*)>`)

// javaRegexToGo rewrites Java named groups to Go's (?P<name>...) syntax.
// Other Java-only constructs are left alone and fail to compile.
func javaRegexToGo(s string) string {
	return javaNamedGroup.ReplaceAllString(s, `(?P<$1>`)
}

// javaReplacementToGo rewrites a java.util.regex.Matcher replacement
// ("${name}", "$1", "\$" for a literal dollar) into regexp.Expand syntax.
func javaReplacementToGo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch == '\\' && i+1 < len(s):
			i++
			if s[i] == '$' {
				b.WriteString("$$")
			} else {
				b.WriteByte(s[i])
			}
		case ch == '$' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			j := i + 1
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			b.WriteString("${" + s[i+1:j] + "}")
			i = j - 1
		default:
			b.WriteByte(ch)
		}
	}
	return b.String()
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
