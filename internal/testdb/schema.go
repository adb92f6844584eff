package testdb

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql's "pgx" driver
)

// PostgresSchema returns the DSN of a schema of its own in the PostgreSQL
// that REACH_TEST_POSTGRES names (scripts/test starts one), dropped when t
// ends; opening the DSN again acts as a restarted process. Without
// PostgreSQL it skips t, except in CI, where the store must be tested.
// Unlike the servers above it needs no namespace, so it builds everywhere.
func PostgresSchema(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("REACH_TEST_POSTGRES")
	if dsn == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("REACH_TEST_POSTGRES is not set; in CI the PostgreSQL store must be tested (scripts/test starts one with scripts/pg-start)")
		}
		t.Skip("REACH_TEST_POSTGRES not set; run scripts/pg-start and export its DSN")
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "reach_test_" + hex.EncodeToString(b)
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
