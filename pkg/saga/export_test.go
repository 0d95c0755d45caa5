package saga

// For the tests of package saga_test that walk and fuzz the definition of
// the table tests with sagatest, which these internal tests cannot import
// (sagatest imports saga).
var (
	// TestDef is def: four steps, b without compensation nor deadline.
	TestDef = def
	// TestNow is when the table tests' transitions happen.
	TestNow = now
)
