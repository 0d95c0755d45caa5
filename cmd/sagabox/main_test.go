package main

import (
	"os"
	"testing"

	"github.com/sagabox/sagabox/internal/testenv"
)

// TestMain stops the PostgreSQL cluster testenv may start. The test binary
// doubles as the sagabox binary: `sagabox up` starts its components as
// child processes of os.Executable(), which under `go test` is this binary;
// with asMain set (inherited by those children) it runs main instead of
// the tests.
func TestMain(m *testing.M) {
	const asMain = "SAGABOX_TEST_AS_MAIN"
	if os.Getenv(asMain) == "1" {
		main()
		os.Exit(0)
	}
	if err := os.Setenv(asMain, "1"); err != nil {
		panic(err)
	}
	testenv.Main(m)
}
