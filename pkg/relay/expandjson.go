package relay

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// This file implements EventRouter's table.expand.json.payload: the payload
// string is parsed with Jackson's rules and turned into a Connect structure
// by Debezium's JsonSchemaData (schema inferred from the document). When
// that fails, Debezium logs a warning and keeps the string; so does
// expandJSONPayload.

// jnode is a parsed JSON value with Jackson's node types.
type jnode struct {
	kind   byte // 's' string, 'b' boolean, 'i' int, 'l' long, 'B' big integer, 'd' double, 'n' null, 'a' array, 'o' object
	str    string
	b      bool
	i      int64
	d      float64
	elems  []*jnode
	keys   []string
	fields map[string]*jnode
}

// jschema is the Connect schema JsonSchemaData infers.
type jschema struct {
	kind   byte // 's', 'b', 'i' (INT32), 'l' (INT64), 'd' (FLOAT64), 'y' (BYTES), 'a' (ARRAY), 'o' (STRUCT)
	elem   *jschema
	fields []jfield
}

type jfield struct {
	name   string
	schema *jschema
}

func (s *jschema) field(name string) *jschema {
	for _, f := range s.fields {
		if f.name == name {
			return f.schema
		}
	}
	return nil
}

func (s *jschema) equal(o *jschema) bool {
	if s == nil || o == nil {
		return s == o
	}
	if s.kind != o.kind || len(s.fields) != len(o.fields) || !s.elem.equal(o.elem) {
		return false
	}
	for i := range s.fields {
		if s.fields[i].name != o.fields[i].name || !s.fields[i].schema.equal(o.fields[i].schema) {
			return false
		}
	}
	return true
}

// expandJSONPayload returns the expanded payload, or payload itself when it
// is not a string starting with '{' or '[' that converts.
func expandJSONPayload(payload any, nullAsBytes bool) any {
	s, ok := payload.(string)
	if !ok || !(strings.HasPrefix(s, "{") || strings.HasPrefix(s, "[")) {
		return payload
	}
	doc, err := parseJackson(s)
	if err != nil {
		return payload
	}
	schema, err := inferSchema(doc, nullAsBytes)
	if err != nil || schema == nil || schema.kind != 'o' {
		return payload // toConnectData builds a Struct: only objects expand
	}
	v, err := structFromNode(doc, schema)
	if err != nil {
		return payload
	}
	return v
}

// parseJackson parses the first JSON value of s (Jackson ignores trailing
// content), keeping object key order; a repeated key keeps its first
// position and its last value.
func parseJackson(s string) (*jnode, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	return parseNode(dec)
}

func parseNode(dec *json.Decoder) (*jnode, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n := &jnode{kind: 'o', fields: map[string]*jnode{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, errors.New("object key is not a string")
				}
				v, err := parseNode(dec)
				if err != nil {
					return nil, err
				}
				if _, seen := n.fields[k]; !seen {
					n.keys = append(n.keys, k)
				}
				n.fields[k] = v
			}
			_, err := dec.Token()
			return n, err
		case '[':
			n := &jnode{kind: 'a'}
			for dec.More() {
				v, err := parseNode(dec)
				if err != nil {
					return nil, err
				}
				n.elems = append(n.elems, v)
			}
			_, err := dec.Token()
			return n, err
		}
	case string:
		return &jnode{kind: 's', str: t}, nil
	case bool:
		return &jnode{kind: 'b', b: t}, nil
	case nil:
		return &jnode{kind: 'n'}, nil
	case json.Number:
		txt := string(t)
		if strings.ContainsAny(txt, ".eE") {
			f, err := strconv.ParseFloat(txt, 64)
			if err != nil && !math.IsInf(f, 0) {
				return nil, err
			}
			return &jnode{kind: 'd', d: f}, nil
		}
		i, err := strconv.ParseInt(txt, 10, 64)
		switch {
		case err != nil:
			return &jnode{kind: 'B'}, nil
		case i >= math.MinInt32 && i <= math.MaxInt32:
			return &jnode{kind: 'i', i: i}, nil
		default:
			return &jnode{kind: 'l', i: i}, nil
		}
	}
	return nil, fmt.Errorf("unexpected token %v", tok)
}

// inferSchema is JsonSchemaData.toConnectSchema; nil is "no schema" (a null
// with the default null behaviour, an empty array).
func inferSchema(n *jnode, nullAsBytes bool) (*jschema, error) {
	switch n.kind {
	case 's', 'b':
		return &jschema{kind: n.kind}, nil
	case 'i', 'l':
		return &jschema{kind: n.kind}, nil
	case 'd', 'B':
		return &jschema{kind: 'd'}, nil
	case 'n':
		if nullAsBytes {
			return &jschema{kind: 'y'}, nil
		}
		return nil, nil
	case 'a':
		if len(n.elems) == 0 {
			return nil, nil
		}
		elem, err := arrayElementSchema(n, nullAsBytes)
		if err != nil {
			return nil, err
		}
		return &jschema{kind: 'a', elem: elem}, nil
	case 'o':
		s := &jschema{kind: 'o'}
		for _, k := range n.keys {
			fs, err := inferSchema(n.fields[k], nullAsBytes)
			if err != nil {
				return nil, err
			}
			if fs != nil && s.field(k) == nil {
				s.fields = append(s.fields, jfield{k, fs})
			}
		}
		return s, nil
	}
	return nil, fmt.Errorf("unknown node")
}

// arrayElementSchema is toConnectSchemaWithCycles: every non-null element of
// one node type (and one number type); objects merge their fields. Debezium
// merges the distinct object schemas in HashSet order; the relay merges
// them in element order (identical when the elements share one schema).
func arrayElementSchema(a *jnode, nullAsBytes bool) (*jschema, error) {
	var ref *jnode
	var refSchema *jschema
	for _, e := range a.elems {
		if e.kind == 'n' {
			continue
		}
		if ref == nil {
			ref = e
		}
		if nodeType(e) != nodeType(ref) {
			return nil, errors.New("not a homogenous array")
		}
		if nodeType(ref) == 'N' {
			if refSchema == nil {
				refSchema, _ = inferSchema(ref, nullAsBytes)
			}
			es, _ := inferSchema(e, nullAsBytes)
			if es.kind != refSchema.kind {
				return nil, errors.New("not a homogenous array: different number types")
			}
		}
	}
	if ref == nil {
		ref = &jnode{kind: 'n'}
	}
	if ref.kind != 'o' {
		s, err := inferSchema(ref, nullAsBytes)
		if err != nil {
			return nil, err
		}
		if s == nil {
			return nil, errors.New("array has unrecognized member schema")
		}
		return s, nil
	}
	var merged *jschema
	for _, e := range a.elems {
		if e.kind != 'o' {
			continue
		}
		s, err := inferSchema(e, nullAsBytes)
		if err != nil {
			return nil, err
		}
		merged = mergeSchema(merged, s)
	}
	return merged, nil
}

func nodeType(n *jnode) byte {
	switch n.kind {
	case 'i', 'l', 'd', 'B':
		return 'N'
	}
	return n.kind
}

func mergeSchema(left, right *jschema) *jschema {
	if left == nil {
		return right
	}
	out := &jschema{kind: 'o', fields: append([]jfield(nil), left.fields...)}
	for _, f := range right.fields {
		i := -1
		for j, o := range out.fields {
			if o.name == f.name {
				i = j
			}
		}
		switch {
		case i < 0:
			out.fields = append(out.fields, f)
		case !out.fields[i].schema.equal(f.schema) && out.fields[i].schema.kind == 'y' && f.schema.kind != 'y':
			out.fields[i] = f
		}
	}
	return out
}

// structFromNode is JsonSchemaData.jsonNodeToStructInternal with Connect's
// Struct.put validation: a value that does not fit its field's schema fails
// the expansion.
func structFromNode(n *jnode, s *jschema) (*structValue, error) {
	if n.kind != 'o' || s.kind != 'o' {
		return nil, errors.New("not a struct")
	}
	out := &structValue{}
	for _, f := range s.fields {
		var v any
		if child, ok := n.fields[f.name]; ok {
			var err error
			if v, err = valueFromNode(child, f.schema); err != nil {
				return nil, err
			}
		}
		out.fields = append(out.fields, field{f.name, v})
	}
	return out, nil
}

func valueFromNode(n *jnode, s *jschema) (any, error) {
	var v any
	switch n.kind {
	case 'n':
		return nil, nil
	case 's':
		v = n.str
	case 'b':
		v = n.b
	case 'i':
		v = int32(n.i)
	case 'l':
		v = n.i
	case 'd':
		v = n.d
	case 'B':
		return nil, errors.New("big integer in a FLOAT64 field")
	case 'a':
		if s == nil || s.kind != 'a' {
			return nil, errors.New("array in a non-array field")
		}
		list := []any{}
		for _, e := range n.elems {
			ev, err := valueFromNode(e, s.elem)
			if err != nil {
				return nil, err
			}
			list = append(list, ev)
		}
		return list, nil
	case 'o':
		if s == nil || s.kind != 'o' {
			return nil, errors.New("object in a non-struct field")
		}
		return structFromNode(n, s)
	}
	if s == nil || !fits(v, s.kind) {
		return nil, fmt.Errorf("value %v does not fit its field", v)
	}
	return v, nil
}

func fits(v any, kind byte) bool {
	switch v.(type) {
	case string:
		return kind == 's'
	case bool:
		return kind == 'b'
	case int32:
		return kind == 'i'
	case int64:
		return kind == 'l'
	case float64:
		return kind == 'd'
	}
	return false
}
