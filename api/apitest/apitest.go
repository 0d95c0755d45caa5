// Package apitest checks real HTTP answers against the OpenAPI document of
// the services' APIs (api.OpenAPI), so that a test fails when a service
// answers what the document does not describe: a path, method or status it
// does not list, or a JSON body its schema refuses. Pass Check to
// api.Client (its Check field), or call it on a recorded response.
package apitest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"mime"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/sagabox/sagabox/api"
)

// What Check reports, wrapped with the method, path, status and details.
var (
	ErrUndocumentedPath        = errors.New("undocumented path")
	ErrUndocumentedMethod      = errors.New("undocumented method")
	ErrUndocumentedStatus      = errors.New("undocumented status")
	ErrUndocumentedContentType = errors.New("undocumented content type")
	ErrInvalidBody             = errors.New("body does not match the document")
)

// docURL names the document for the schema compiler; nothing is fetched
// from it.
const docURL = "https://sagabox.invalid/openapi.json"

// Checker validates HTTP responses against the OpenAPI document. It is
// immutable once built: safe for concurrent use by parallel tests.
type Checker struct {
	paths []*pathItem // most literal segments first
}

type pathItem struct {
	template string
	re       *regexp.Regexp
	literals int // segments without a parameter
	ops      map[string]*operation
}

type operation struct {
	// responses by their key in the document: "200", "4XX" or "default".
	responses map[string]*response
}

type response struct {
	// content by media type (lower case, without parameters); empty when
	// the response has no body.
	content map[string]*media
}

type media struct {
	schema *jsonschema.Schema // nil: the document gives none
	name   string             // what errors call the schema
}

var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// New reads an OpenAPI 3.1 document and compiles the schema of every
// response body it describes, so that a schema that does not compile (a
// $ref that resolves nowhere, a keyword used wrongly) fails here rather than
// in the middle of a test.
func New(doc []byte) (*Checker, error) {
	root, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("read OpenAPI document: %w", err)
	}
	top, ok := root.(map[string]any)
	if !ok {
		return nil, errors.New("read OpenAPI document: not a JSON object")
	}
	if v, _ := top["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		return nil, fmt.Errorf("read OpenAPI document: openapi %q: want 3.1.x", v)
	}
	paths, ok := top["paths"].(map[string]any)
	if !ok {
		return nil, errors.New("read OpenAPI document: no paths object")
	}
	comp := jsonschema.NewCompiler()
	comp.DefaultDraft(jsonschema.Draft2020)
	comp.AssertFormat()
	comp.RegisterFormat(&jsonschema.Format{Name: "int32", Validate: intFormat(32)})
	comp.RegisterFormat(&jsonschema.Format{Name: "int64", Validate: intFormat(64)})
	if err := comp.AddResource(docURL, root); err != nil {
		return nil, fmt.Errorf("add OpenAPI document to the schema compiler: %w", err)
	}
	c := &Checker{}
	for _, tmpl := range slices.Sorted(maps.Keys(paths)) {
		p, err := readPath(comp, top, tmpl, paths[tmpl])
		if err != nil {
			return nil, err
		}
		c.paths = append(c.paths, p)
	}
	// Several templates may match a path (/admin/sagas/stats and
	// /admin/sagas/{id}): the one with more literal segments wins; of
	// those with as many, the first by name, where "{" sorts after the
	// letters and digits of a literal segment.
	slices.SortStableFunc(c.paths, func(a, b *pathItem) int { return b.literals - a.literals })
	return c, nil
}

var defaultOnce = sync.OnceValues(func() (*Checker, error) { return New(api.OpenAPI()) })

// Must is New(api.OpenAPI()) that fails t on error. The document is
// compiled once per test binary.
func Must(t testing.TB) *Checker {
	t.Helper()
	c, err := defaultOnce()
	if err != nil {
		t.Fatalf("apitest: %v", err)
	}
	return c
}

func readPath(comp *jsonschema.Compiler, top map[string]any, tmpl string, v any) (*pathItem, error) {
	item, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("path %s: not an object", tmpl)
	}
	if _, ok := item["$ref"]; ok {
		return nil, fmt.Errorf("path %s: a path item $ref is not supported", tmpl)
	}
	re, literals, err := templateRegexp(tmpl)
	if err != nil {
		return nil, err
	}
	p := &pathItem{template: tmpl, re: re, literals: literals, ops: map[string]*operation{}}
	for _, m := range methods {
		raw, ok := item[m]
		if !ok {
			continue
		}
		ptr := "/paths/" + escape(tmpl) + "/" + m
		op, err := readOperation(comp, top, ptr, raw)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", strings.ToUpper(m), tmpl, err)
		}
		p.ops[m] = op
	}
	return p, nil
}

// templateRegexp matches the concrete paths of a path template: each
// {param} stands for one non-empty segment, or a non-empty part of one.
func templateRegexp(tmpl string) (*regexp.Regexp, int, error) {
	if !strings.HasPrefix(tmpl, "/") {
		return nil, 0, fmt.Errorf("path %s: does not start with /", tmpl)
	}
	var b strings.Builder
	literals := 0
	for _, seg := range strings.Split(tmpl[1:], "/") {
		b.WriteString("/")
		if !strings.Contains(seg, "{") {
			literals++
			b.WriteString(regexp.QuoteMeta(seg))
			continue
		}
		for seg != "" {
			open := strings.IndexByte(seg, '{')
			if open < 0 {
				b.WriteString(regexp.QuoteMeta(seg))
				break
			}
			end := strings.IndexByte(seg[open:], '}')
			if end < 0 {
				return nil, 0, fmt.Errorf("path %s: unclosed {", tmpl)
			}
			b.WriteString(regexp.QuoteMeta(seg[:open]))
			b.WriteString("[^/]+")
			seg = seg[open+end+1:]
		}
	}
	re, err := regexp.Compile("^" + b.String() + "$")
	if err != nil {
		return nil, 0, fmt.Errorf("path %s: %w", tmpl, err)
	}
	return re, literals, nil
}

func readOperation(comp *jsonschema.Compiler, top map[string]any, ptr string, v any) (*operation, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("not an object")
	}
	resps, ok := obj["responses"].(map[string]any)
	if !ok || len(resps) == 0 {
		return nil, errors.New("no responses")
	}
	op := &operation{responses: map[string]*response{}}
	for code, raw := range resps {
		if !validStatusKey(code) {
			return nil, fmt.Errorf("response %q: not a status, a range like 4XX or default", code)
		}
		r, err := readResponse(comp, top, ptr+"/responses/"+escape(code), raw)
		if err != nil {
			return nil, fmt.Errorf("response %s: %w", code, err)
		}
		if code != "default" {
			code = strings.ToUpper(code) // 4xx is 4XX
		}
		op.responses[code] = r
	}
	return op, nil
}

func validStatusKey(k string) bool {
	if k == "default" {
		return true
	}
	if len(k) != 3 || k[0] < '1' || k[0] > '5' {
		return false
	}
	if strings.EqualFold(k[1:], "XX") {
		return true
	}
	_, err := strconv.Atoi(k)
	return err == nil
}

func readResponse(comp *jsonschema.Compiler, top map[string]any, ptr string, v any) (*response, error) {
	// A response may be a $ref to components/responses (or further refs).
	for range 10 {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, errors.New("not an object")
		}
		ref, ok := obj["$ref"].(string)
		if !ok {
			break
		}
		target, err := resolve(top, ref)
		if err != nil {
			return nil, err
		}
		ptr, v = strings.TrimPrefix(ref, "#"), target
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("not an object")
	}
	if _, ok := obj["$ref"]; ok {
		return nil, errors.New("$ref chain too long")
	}
	r := &response{content: map[string]*media{}}
	content, _ := obj["content"].(map[string]any)
	for mt, raw := range content {
		mobj, ok := raw.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("content %s: not an object", mt)
		}
		name, _, err := mime.ParseMediaType(mt)
		if err != nil {
			return nil, fmt.Errorf("content %s: %w", mt, err)
		}
		m := &media{}
		if sch, ok := mobj["schema"]; ok {
			loc := ptr + "/content/" + escape(mt) + "/schema"
			if m.schema, err = comp.Compile(docURL + "#" + fragment(loc)); err != nil {
				return nil, fmt.Errorf("content %s: compile schema: %w", mt, err)
			}
			m.name = "#" + loc
			if s, ok := sch.(map[string]any); ok && len(s) == 1 {
				if ref, ok := s["$ref"].(string); ok {
					m.name = ref
				}
			}
		}
		r.content[name] = m
	}
	return r, nil
}

// resolve returns what the local reference ref ("#/components/…") points
// to in the document.
func resolve(top map[string]any, ref string) (any, error) {
	ptr, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return nil, fmt.Errorf("$ref %s: only references within the document are supported", ref)
	}
	var v any = top
	for _, tok := range strings.Split(ptr, "/")[1:] {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("$ref %s: resolves nowhere", ref)
		}
		if v, ok = obj[tok]; !ok {
			return nil, fmt.Errorf("$ref %s: resolves nowhere", ref)
		}
	}
	return v, nil
}

// escape makes tok a JSON pointer token (RFC 6901).
func escape(tok string) string {
	return strings.ReplaceAll(strings.ReplaceAll(tok, "~", "~0"), "/", "~1")
}

// fragment writes a JSON pointer as a URI fragment: the compiler
// percent-decodes fragments, and templates hold { and }.
func fragment(ptr string) string {
	toks := strings.Split(ptr, "/")
	for i, t := range toks {
		toks[i] = url.PathEscape(t)
	}
	return strings.Join(toks, "/")
}

// intFormat checks OpenAPI's int32 and int64 formats: an integer that fits.
func intFormat(bits uint) func(any) error {
	lo := new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), bits-1))
	hi := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), bits-1), big.NewInt(1))
	return func(v any) error {
		n, ok := v.(json.Number)
		if !ok {
			return nil // not a number: for the type keyword to judge
		}
		r, ok := new(big.Rat).SetString(string(n))
		if !ok {
			return nil
		}
		if !r.IsInt() || r.Num().Cmp(lo) < 0 || r.Num().Cmp(hi) > 0 {
			return fmt.Errorf("%s is not an int%d", n, bits)
		}
		return nil
	}
}

// Check reports what is wrong with a response to method path (the real
// request path, e.g. "/admin/sagas/0b7e…" or "/payments?orderId=3"; the
// query is ignored) with status, content type and body: an undocumented
// path, method or status, a content type the status does not document, or
// a JSON body that does not validate against the status's schema. Other
// bodies (text/plain: /metrics) are only checked for being documented.
func (c *Checker) Check(method, path string, status int, contentType string, body []byte) error {
	where := fmt.Sprintf("%s %s", method, path)
	p, err := c.match(path)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	op, ok := p.ops[strings.ToLower(method)]
	if !ok {
		return fmt.Errorf("%s: %w: %s has %s", where, ErrUndocumentedMethod, p.template, p.methods())
	}
	where = fmt.Sprintf("%s (%s) status %d", where, p.template, status)
	r := op.response(status)
	if r == nil {
		return fmt.Errorf("%s: %w: documented are %s", where, ErrUndocumentedStatus, strings.Join(op.statuses(), ", "))
	}
	if len(r.content) == 0 {
		if len(bytes.TrimSpace(body)) > 0 {
			return fmt.Errorf("%s: %w: %q where the document has no body", where, ErrUndocumentedContentType, contentType)
		}
		return nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("%s: %w: %q: %v", where, ErrUndocumentedContentType, contentType, err)
	}
	m := r.media(mt)
	if m == nil {
		return fmt.Errorf("%s: %w: %s, documented are %s", where, ErrUndocumentedContentType, mt,
			strings.Join(slices.Sorted(maps.Keys(r.content)), ", "))
	}
	if !isJSON(mt) {
		return nil
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w: not JSON: %v", where, ErrInvalidBody, err)
	}
	if m.schema == nil {
		return nil
	}
	if err := m.schema.Validate(v); err != nil {
		return fmt.Errorf("%s: %w %s: %s", where, ErrInvalidBody, m.name, describe(err))
	}
	return nil
}

// match finds the path item of a concrete path.
func (c *Checker) match(path string) (*pathItem, error) {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	for _, p := range c.paths {
		if p.re.MatchString(path) {
			return p, nil
		}
	}
	return nil, ErrUndocumentedPath
}

func (p *pathItem) methods() string {
	var ms []string
	for _, m := range methods {
		if _, ok := p.ops[m]; ok {
			ms = append(ms, strings.ToUpper(m))
		}
	}
	return strings.Join(ms, ", ")
}

// response is the response the document gives for status: its own, its
// range's (4XX) or the default.
func (op *operation) response(status int) *response {
	code := strconv.Itoa(status)
	if r, ok := op.responses[code]; ok {
		return r
	}
	if r, ok := op.responses[code[:1]+"XX"]; ok && len(code) == 3 {
		return r
	}
	return op.responses["default"]
}

func (op *operation) statuses() []string {
	return slices.Sorted(maps.Keys(op.responses))
}

// media is the content the document gives for media type mt: its own,
// type/* or */*.
func (r *response) media(mt string) *media {
	if m, ok := r.content[mt]; ok {
		return m
	}
	if typ, _, ok := strings.Cut(mt, "/"); ok {
		if m, ok := r.content[typ+"/*"]; ok {
			return m
		}
	}
	return r.content["*/*"]
}

func isJSON(mt string) bool {
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// describe lists the leaf failures of a validation error, one per place in
// the body ("at '/saga/status': value must be one of …"), without the
// compiler's URL of the schema.
func describe(err error) string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err.Error()
	}
	var leaves []string
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			leaves = append(leaves, e.Error())
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return strings.Join(leaves, "; ")
}
