package relay

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"unicode"
)

// config reads a flat Kafka Connect configuration map the way Debezium and
// Connect read their settings, collecting every problem:
//   - strings are used as written (Debezium's Configuration.getString does
//     not trim), with Debezium's default when the key is absent;
//   - booleans and enumerations are trimmed and case-insensitive (Connect's
//     ConfigDef and Debezium's EnumeratedValue.parse); any other value is an
//     error, as Connect refuses such a configuration.
type config struct {
	m      map[string]string
	prefix string
	errs   []error
}

func (c *config) key(k string) string { return c.prefix + k }

func (c *config) has(k string) bool {
	_, ok := c.m[c.key(k)]
	return ok
}

func (c *config) errorf(k, format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("key %s: "+format, append([]any{c.key(k)}, args...)...))
}

// str returns the value of k as written, def when k is absent.
func (c *config) str(k, def string) string {
	if v, ok := c.m[c.key(k)]; ok {
		return v
	}
	return def
}

// required returns the trimmed value of k and records an error when it is
// absent or blank.
func (c *config) required(k string) string {
	v := strings.TrimSpace(c.m[c.key(k)])
	if v == "" {
		c.errorf(k, "missing")
	}
	return v
}

func (c *config) boolean(k string, def bool) bool {
	v, ok := c.m[c.key(k)]
	if !ok {
		return def
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true":
		return true
	case "false":
		return false
	}
	c.errorf(k, "invalid boolean %q", v)
	return def
}

// enum returns the value of k among allowed (lower case), def when absent.
func (c *config) enum(k, def string, allowed ...string) string {
	v, ok := c.m[c.key(k)]
	if !ok {
		return def
	}
	t := strings.ToLower(strings.TrimSpace(v))
	for _, a := range allowed {
		if t == a {
			return a
		}
	}
	c.errorf(k, "unsupported value %q (the relay implements %s)", v, strings.Join(allowed, ", "))
	return def
}

func (c *config) integer(k string, def int64) int64 {
	v, ok := c.m[c.key(k)]
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		c.errorf(k, "invalid integer %q", v)
		return def
	}
	return n
}

// refuse records an error when k is set to anything but one of the values
// the relay implements (compared like enumerations).
func (c *config) refuse(k string, why string, harmless ...string) {
	v, ok := c.m[c.key(k)]
	if !ok {
		return
	}
	t := strings.ToLower(strings.TrimSpace(v))
	for _, h := range harmless {
		if t == h {
			return
		}
	}
	c.errorf(k, "not supported by the relay (%s)", why)
}

func (c *config) err() error { return errors.Join(c.errs...) }

// decodeConfig reads a connector file: a flat Kafka Connect configuration
// map, or {"name": ..., "config": {...}} as posted to Connect's REST API.
// Numbers and booleans are accepted as their JSON text.
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

// splitRegexList splits a Debezium list of regular expressions: commas
// separate entries unless escaped with a backslash; entries are trimmed and
// empty ones dropped (Strings.setOfRegex with RegExSplitter).
func splitRegexList(s string) []string {
	var out []string
	var cur strings.Builder
	flush := func() {
		if t := strings.TrimSpace(cur.String()); t != "" {
			out = append(out, t)
		}
		cur.Reset()
	}
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == ',':
			cur.WriteByte(',')
			i++
		case s[i] == ',':
			flush()
		default:
			cur.WriteByte(s[i])
		}
	}
	flush()
	return out
}

// javaNamedGroup matches a Java named group opening, "(?<name>", but not the
// lookbehinds "(?<=" and "(?<!".
var javaNamedGroup = regexp.MustCompile(`\(\?<([A-Za-z][A-Za-z0-9]*)>`)

// compileJavaRegex compiles a java.util.regex pattern with Go's engine: named
// groups are rewritten to Go's syntax; constructs Go lacks (lookaround,
// backreferences, possessive quantifiers) fail to compile and are reported;
// "." matches what Java's does (see javaDots).
func compileJavaRegex(s string, caseInsensitive, whole bool) (*regexp.Regexp, error) {
	g := javaNamedGroup.ReplaceAllString(s, `(?P<$1>`)
	if whole {
		g = `^(?:` + g + `)$`
	}
	if caseInsensitive {
		g = `(?i)` + g
	}
	re, err := syntax.Parse(g, syntax.Perl)
	if err != nil {
		return nil, err
	}
	javaDots(re)
	return regexp.Compile(re.String())
}

// javaDots makes every "." of re (outside (?s)) Java's: any character but
// a line terminator — \n, \r, U+0085, U+2028 or U+2029 — where Go's
// excludes only \n. (Found by FuzzRouteOutboxRow: an aggregatetype with a
// \r was routed, which Debezium leaves on the unrouted topic.)
func javaDots(re *syntax.Regexp) {
	if re.Op == syntax.OpAnyCharNotNL {
		re.Op = syntax.OpCharClass
		re.Rune = []rune{0, '\n' - 1, '\n' + 1, '\r' - 1, '\r' + 1, 0x84, 0x86, 0x2027, 0x202A, unicode.MaxRune}
	}
	for _, sub := range re.Sub {
		javaDots(sub)
	}
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
