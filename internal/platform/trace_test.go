package platform

import "testing"

func TestSQLSpanName(t *testing.T) {
	t.Parallel()
	for stmt, want := range map[string]string{
		"INSERT INTO outboxevent (id) VALUES ($1)":                  "INSERT outboxevent",
		"\n\t\tupdate sagastate\n SET x = 1 WHERE id = $1":          "UPDATE sagastate",
		"DELETE FROM outboxevent WHERE created_at < now()":          "DELETE outboxevent",
		"SELECT id, type\n\t\tFROM sagastate WHERE id = $1":         "SELECT sagastate",
		"SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)": "SELECT pg_roles",
		"begin": "BEGIN",
		"":      "query",
	} {
		if got := sqlSpanName(stmt); got != want {
			t.Errorf("sqlSpanName(%q) = %q, want %q", stmt, got, want)
		}
	}
}
