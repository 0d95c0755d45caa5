// Package api is sagabox's HTTP APIs as a client sees them: the OpenAPI
// document that describes every service's API (OpenAPI), served by every
// service at GET /openapi.json, and the one typed client of them (Client),
// which the console, the CLI and the tests use.
package api

import _ "embed"

//go:embed openapi.json
var openapi []byte

// OpenAPI returns the OpenAPI 3.1 document of the services' HTTP APIs.
func OpenAPI() []byte { return openapi }
