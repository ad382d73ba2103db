package db

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tether/internal/secrets"
)

// What the writer commits reaches the database file within a few
// checkpoint intervals, with the write-ahead log far below the writer's
// own backstop (16,000 pages): the checkpointer copied it, not a commit.
func TestCheckpointerCopiesTheLogBesideTheWriter(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tether.db")
	box, err := secrets.NewBox("0123456789abcdef0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), path, box)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.write.ExecContext(ctx, `CREATE TABLE filler (b TEXT)`); err != nil {
		t.Fatal(err)
	}
	before := fileSize(t, path)
	row := strings.Repeat("x", 3000)
	for range 1000 { // about 750 pages of log, each its own commit
		if _, err := s.write.ExecContext(ctx, `INSERT INTO filler VALUES (?)`, row); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * checkpointInterval)
	for fileSize(t, path) < before+2_000_000 {
		if time.Now().After(deadline) {
			t.Fatalf("the database file is %d bytes (%d before 3 MB were committed): nothing checkpointed it", fileSize(t, path), before)
		}
		time.Sleep(checkpointInterval / 4)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// A store may be closed more than once (the app's shutdown and a test's
// cleanup): the second Close does not stop the checkpointer again.
func TestStoreClosesTwice(t *testing.T) {
	t.Parallel()
	s := openTemp(t)
	s.Close()
	s.Close()
}
