package db

import (
	"context"
	"database/sql"

	"tether/internal/tether"
)

// RecordDeprecation stores that Bitbucket answered 410 Gone naming
// d.Change; it reports whether this is the first time for that change.
func (s *Store) RecordDeprecation(ctx context.Context, d tether.Deprecation) (bool, error) {
	now := s.now()
	first := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO deprecations (change, message, method, path, first_seen, last_seen)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (change) DO NOTHING`, d.Change, d.Message, d.Method, d.Path, now, now)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			first = true
			return nil
		}
		_, err = tx.ExecContext(ctx, `UPDATE deprecations SET last_seen = ?, count = count + 1 WHERE change = ?`, now, d.Change)
		return err
	})
	return first, err
}

// Deprecations lists the retirements recorded, newest first.
func (s *Store) Deprecations(ctx context.Context) ([]tether.Deprecation, error) {
	rows, err := s.readRows(ctx, `SELECT change, message, method, path, first_seen, last_seen, count FROM deprecations ORDER BY first_seen DESC`)
	return collect(rows, err, func(row rowScanner) (tether.Deprecation, error) {
		var d tether.Deprecation
		err := row.Scan(&d.Change, &d.Message, &d.Method, &d.Path, &d.FirstSeen, &d.LastSeen, &d.Count)
		return d, err
	})
}
