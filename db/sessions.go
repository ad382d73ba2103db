package db

import (
	"context"
	"tether/internal/tether"
	"time"
)

// CreateSession stores a session for userID under the hash of its token.
func (s *Store) CreateSession(ctx context.Context, tokenHash []byte, userID int64, expires time.Time) error {
	_, err := s.write.ExecContext(ctx, `INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)`,
		tokenHash, userID, s.now(), expires.UTC())
	return err
}

// SessionUser returns the user of an unexpired session.
func (s *Store) SessionUser(ctx context.Context, tokenHash []byte) (tether.User, error) {
	now := s.now()
	row, err := s.hot.sessions.get(string(tokenHash), func() (sessionRow, error) {
		var r sessionRow
		err := s.readRow(ctx, `SELECT `+userColumns+`, s.expires_at`+userFrom+`
			JOIN sessions s ON s.user_id = u.id WHERE s.token_hash = ? AND s.expires_at > ?`, tokenHash, now).
			Scan(&r.user.ID, &r.user.Name, &r.user.Email, &r.user.CreatedAt, &r.expires)
		return r, notFound(err)
	})
	if err == nil && !row.expires.After(now) {
		return tether.User{}, tether.ErrNotFound
	}
	return row.user, err
}

// DeleteSession ends a session.
func (s *Store) DeleteSession(ctx context.Context, tokenHash []byte) error {
	_, err := s.write.ExecContext(ctx, `DELETE FROM sessions WHERE token_hash = ?`, tokenHash)
	return err
}

// PruneSessions deletes up to limit sessions that expired before now and
// returns how many it deleted.
func (s *Store) PruneSessions(ctx context.Context, now time.Time, limit int) (int64, error) {
	res, err := s.write.ExecContext(ctx, `DELETE FROM sessions WHERE token_hash IN
		(SELECT token_hash FROM sessions WHERE expires_at <= ? LIMIT ?)`, now.UTC(), limit)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
