// Package requests embeds the example orders of this directory, which the
// README's curl commands send and the console's place-order form offers.
package requests

import (
	"embed"
	"io/fs"
)

//go:embed *.json
var files embed.FS

// Files returns the example request bodies (place-order.json, …).
func Files() fs.FS { return files }
