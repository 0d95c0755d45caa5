package main

import (
	"context"
	"io"

	"github.com/sagabox/sagabox/internal/console"
)

// consoleCmd is `sagabox console`: the dashboard (see internal/console).
func consoleCmd(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	return console.Run(ctx, getenv, stdout)
}
