package hub

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// forEachStore runs test against SQLite (a file in t.TempDir) and
// PostgreSQL (REACH_TEST_POSTGRES, a fresh schema), giving it the DSN;
// opening it again acts as a restarted process.
func forEachStore(t *testing.T, test func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { test(t, filepath.Join(t.TempDir(), "reach.db")) })
	t.Run("postgres", func(t *testing.T) { test(t, freshPostgres(t)) })
}

// freshPostgres returns the DSN of a schema of its own in
// REACH_TEST_POSTGRES, dropped when t ends; it skips t without PostgreSQL,
// except in CI, where it fails.
func freshPostgres(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("REACH_TEST_POSTGRES")
	if dsn == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("REACH_TEST_POSTGRES is not set; in CI the PostgreSQL store must be tested (scripts/test starts one)")
		}
		t.Skip("REACH_TEST_POSTGRES not set; run scripts/pg-start and export its DSN")
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "reach_hub_" + hex.EncodeToString(b)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		db.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() { db.Exec("DROP SCHEMA " + schema + " CASCADE"); db.Close() })
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "search_path=" + schema
}
