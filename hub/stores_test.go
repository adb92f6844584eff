package hub

import (
	"path/filepath"
	"testing"

	"github.com/reach-tools/reach/internal/testdb"
)

// forEachStore runs test against SQLite (a file in t.TempDir) and
// PostgreSQL (REACH_TEST_POSTGRES, a fresh schema), giving it the DSN;
// opening it again acts as a restarted process.
func forEachStore(t *testing.T, test func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { test(t, filepath.Join(t.TempDir(), "reach.db")) })
	t.Run("postgres", func(t *testing.T) { test(t, testdb.PostgresSchema(t)) })
}
