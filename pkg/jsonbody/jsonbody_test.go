package jsonbody_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sagabox/sagabox/pkg/jsonbody"
)

func TestRead(t *testing.T) {
	t.Parallel()
	type body struct {
		Reason string `json:"reason"`
	}
	for _, tc := range []struct {
		name, body string
		emptyOK    bool
		want       string // the reason read; "" with wantErr
		malformed  bool
		tooBig     bool
	}{
		{name: "an object", body: `{"reason":"ok"}`, want: "ok"},
		{name: "white space around it", body: " \n{\"reason\":\"ok\"}\n ", want: "ok"},
		{name: "empty, allowed", body: "  ", emptyOK: true},
		{name: "empty, not allowed", body: "", malformed: true},
		{name: "an unknown field", body: `{"reason":"ok","x":1}`, malformed: true},
		{name: "a second value", body: `{"reason":"ok"}{}`, malformed: true},
		{name: "trailing garbage", body: `{"reason":"ok"} x`, malformed: true},
		{name: "not UTF-8", body: "{\"reason\":\"\xff\"}", malformed: true},
		{name: "not JSON", body: `reason=ok`, malformed: true},
		{name: "over the limit", body: `{"reason":"` + strings.Repeat("x", 64) + `"}`, tooBig: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
			var got body
			err := jsonbody.Read(httptest.NewRecorder(), r, 64, &got, tc.emptyOK)
			var tooBig *http.MaxBytesError
			switch {
			case tc.malformed && !errors.Is(err, jsonbody.ErrMalformed):
				t.Errorf("error %v, want ErrMalformed", err)
			case tc.tooBig && !errors.As(err, &tooBig):
				t.Errorf("error %v, want *http.MaxBytesError", err)
			case !tc.malformed && !tc.tooBig && (err != nil || got.Reason != tc.want):
				t.Errorf("read %+v, %v; want reason %q", got, err, tc.want)
			}
		})
	}
}
