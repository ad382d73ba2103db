package db

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"tether/internal/secrets"
)

// Tether's files are private (0600) whatever the umask and whether the
// data folder, or an older database readable by others, was there before.
func TestOpenMakesFilesPrivate(t *testing.T) {
	box, _ := secrets.NewBox("0123456789abcdef0123456789abcdef")
	for _, tc := range []struct {
		name     string
		existing os.FileMode // mode of a database left by an older install; 0 for none
	}{
		{"new database in an existing 0755 folder", 0},
		{"database left 0644", 0o644},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "tether.db")
			if tc.existing != 0 {
				s, err := Open(context.Background(), path, box)
				if err != nil {
					t.Fatal(err)
				}
				s.Close()
				os.Chmod(path, tc.existing)
			}
			s, err := Open(context.Background(), path, box)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := s.write.ExecContext(context.Background(), `INSERT INTO users (name, created_at) VALUES ('x', ?)`, s.now()); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"tether.db", "tether.db-wal", "tether.db-shm"} {
				st, err := os.Stat(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm() != 0o600 {
					t.Errorf("%s is %v, want 0600", name, st.Mode().Perm())
				}
			}
		})
	}
}
