// Package jsonbody reads a JSON request body strictly: exactly one object
// of known fields, in valid UTF-8 (RFC 8259: Go's decoder would otherwise
// turn invalid bytes into U+FFFD without a word), nothing after it, and no
// more than a limit.
package jsonbody

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"
)

// ErrMalformed reports a body that is not such an object; the message says
// why (a 400).
var ErrMalformed = errors.New("malformed request body")

// Read decodes the body of r, at most limit bytes, into dst. A longer body
// is a *http.MaxBytesError (a 413); any other problem is ErrMalformed. An
// empty body leaves dst as it is when emptyOK.
func Read(w http.ResponseWriter, r *http.Request, limit int64, dst any, emptyOK bool) error {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return tooBig
		}
		return fmt.Errorf("%w: %s", ErrMalformed, err)
	}
	if emptyOK && len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	if !utf8.Valid(raw) {
		return fmt.Errorf("%w: not UTF-8", ErrMalformed)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return fmt.Errorf("%w: %s", ErrMalformed, strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: unexpected data after the JSON object", ErrMalformed)
	}
	return nil
}
