package db

import (
	"context"
	"database/sql"
	"fmt"
)

// SaveBudgetMeters replaces the stored API budget meters with meters: one
// JSON document per connection, by Tether user id (bitbucket.Meter). A
// connection missing from meters has nothing left in its hour and loses
// its row; a user deleted meanwhile is skipped.
func (s *Store) SaveBudgetMeters(ctx context.Context, meters map[int64][]byte) error {
	now := s.now()
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM budget_meters`); err != nil {
			return fmt.Errorf("db: save budget meters: %w", err)
		}
		for userID, meter := range meters {
			if _, err := tx.ExecContext(ctx, `INSERT INTO budget_meters (user_id, meter, saved_at)
				SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM users WHERE id = ?)`, userID, string(meter), now, userID); err != nil {
				return fmt.Errorf("db: save budget meters: %w", err)
			}
		}
		return nil
	})
}

// BudgetMeters returns the stored API budget meters, by Tether user id.
func (s *Store) BudgetMeters(ctx context.Context) (map[int64][]byte, error) {
	type row struct {
		userID int64
		meter  string
	}
	rows, err := queryAll(ctx, s, func(r rowScanner) (row, error) {
		var x row
		return x, r.Scan(&x.userID, &x.meter)
	}, `SELECT user_id, meter FROM budget_meters`)
	if err != nil {
		return nil, fmt.Errorf("db: budget meters: %w", err)
	}
	out := make(map[int64][]byte, len(rows))
	for _, r := range rows {
		out[r.userID] = []byte(r.meter)
	}
	return out, nil
}
