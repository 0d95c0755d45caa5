package main

import (
	"testing"

	"github.com/sagabox/sagabox/internal/testenv"
)

// TestMain stops the PostgreSQL cluster testenv may start.
func TestMain(m *testing.M) { testenv.Main(m) }
