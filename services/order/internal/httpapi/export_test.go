package httpapi

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
)

// ReadPlaceOrder is readPlaceOrder, for the fuzz tests.
var ReadPlaceOrder = readPlaceOrder

// StatusOf is the HTTP status writeError answers err with.
func StatusOf(err error) int {
	w := httptest.NewRecorder()
	handlers{log: slog.New(slog.DiscardHandler)}.writeError(w, httptest.NewRequest(http.MethodPost, "/orders", nil), err)
	return w.Code
}
