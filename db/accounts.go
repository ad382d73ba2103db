package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"tether/internal/tether"
	"time"
)

const (
	purposeAccess  = "bitbucket_identities.access_token"
	purposeRefresh = "bitbucket_identities.refresh_token"
)

const userColumns = `u.id, u.name, coalesce(p.email, i.email, ''), u.created_at`

const userFrom = ` FROM users u
	LEFT JOIN password_credentials p ON p.user_id = u.id
	LEFT JOIN bitbucket_identities i ON i.user_id = u.id`

func scanUser(row interface{ Scan(...any) error }) (tether.User, error) {
	var u tether.User
	err := row.Scan(&u.ID, &u.Name, &u.Email, &u.CreatedAt)
	return u, notFound(err)
}

// UserByID returns the user with that id.
func (s *Store) UserByID(ctx context.Context, id int64) (tether.User, error) {
	return scanUser(s.readRow(ctx, `SELECT `+userColumns+userFrom+` WHERE u.id = ?`, id))
}

// CreatePasswordUser creates a user who signs in with e-mail and password.
// It returns ErrEmailTaken when any account has the address already, as
// its login or as the e-mail of its Bitbucket identity (case-insensitive).
func (s *Store) CreatePasswordUser(ctx context.Context, name, email, passwordHash string) (tether.User, error) {
	now := s.now()
	u := tether.User{Name: name, Email: email, CreatedAt: now}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		// Any account's address counts: a password account's, and the
		// Bitbucket e-mail of one made (or connected) through Bitbucket.
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM password_credentials WHERE email = ?)
			+ (SELECT count(*) FROM bitbucket_identities WHERE email = ? COLLATE NOCASE AND email != '')`, email, email).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return tether.ErrEmailTaken
		}
		id, err := insertUser(ctx, tx, name, now)
		if err != nil {
			return err
		}
		u.ID = id
		_, err = tx.ExecContext(ctx, `INSERT INTO password_credentials (user_id, email, password_hash, created_at) VALUES (?, ?, ?, ?)`,
			id, email, passwordHash, now)
		return err
	})
	return u, err
}

func insertUser(ctx context.Context, tx *sql.Tx, name string, now time.Time) (int64, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO users (name, created_at) VALUES (?, ?)`, name, now)
	if err != nil {
		return 0, fmt.Errorf("db: insert user: %w", err)
	}
	return res.LastInsertId()
}

// PasswordHash returns the user id and password hash for an e-mail.
func (s *Store) PasswordHash(ctx context.Context, email string) (int64, string, error) {
	var id int64
	var hash string
	err := s.readRow(ctx, `SELECT user_id, password_hash FROM password_credentials WHERE email = ?`, email).Scan(&id, &hash)
	return id, hash, notFound(err)
}

// CreateBitbucketUser creates a user from a Bitbucket profile, connected
// with tok, in one transaction.
func (s *Store) CreateBitbucketUser(ctx context.Context, name string, ident tether.Identity, tok tether.Token) (tether.User, error) {
	now := s.now()
	u := tether.User{Name: name, Email: ident.Email, CreatedAt: now}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := identityUserID(ctx, tx, ident.UUID); err == nil {
			return tether.ErrIdentityTaken
		} else if !errors.Is(err, tether.ErrNotFound) {
			return err
		}
		id, err := insertUser(ctx, tx, name, now)
		if err != nil {
			return err
		}
		u.ID = id
		ident.UserID = id
		return s.upsertIdentity(ctx, tx, ident, tok, now)
	})
	return u, err
}

// ConnectIdentity links ident to userID (replacing a not-connected identity
// the user had) and stores tok. It refuses an identity linked elsewhere.
func (s *Store) ConnectIdentity(ctx context.Context, userID int64, ident tether.Identity, tok tether.Token) error {
	now := s.now()
	return s.tx(ctx, func(tx *sql.Tx) error {
		owner, err := identityUserID(ctx, tx, ident.UUID)
		switch {
		case err == nil && owner != userID:
			return tether.ErrIdentityTaken
		case err != nil && !errors.Is(err, tether.ErrNotFound):
			return err
		}
		var was string
		err = tx.QueryRowContext(ctx, `SELECT status FROM bitbucket_identities WHERE user_id = ? AND bitbucket_uuid = ?`, userID, ident.UUID).Scan(&was)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		ident.UserID = userID
		if err := s.upsertIdentity(ctx, tx, ident, tok, now); err != nil {
			return err
		}
		if was == tether.Connected {
			return nil // a login with a working connection changes nothing
		}
		return s.insertUserAudit(ctx, tx, userID, userID, "Bitbucket connected", "@"+ident.Username)
	})
}

func identityUserID(ctx context.Context, tx *sql.Tx, uuid string) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT user_id FROM bitbucket_identities WHERE bitbucket_uuid = ?`, uuid).Scan(&id)
	return id, notFound(err)
}

func (s *Store) upsertIdentity(ctx context.Context, tx *sql.Tx, ident tether.Identity, tok tether.Token, now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO bitbucket_identities
		(user_id, bitbucket_uuid, username, display_name, email, access_token, refresh_token, token_expires_at,
		 scopes, status, status_reason, connected_at, verified_at, check_error, checked_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'connected', '', ?, ?, '', ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET
		 bitbucket_uuid = excluded.bitbucket_uuid, username = excluded.username,
		 display_name = excluded.display_name, email = excluded.email,
		 access_token = excluded.access_token, refresh_token = excluded.refresh_token,
		 token_expires_at = excluded.token_expires_at, scopes = excluded.scopes,
		 status = 'connected', status_reason = '', connected_at = excluded.connected_at,
		 verified_at = excluded.verified_at, check_error = '', checked_at = excluded.checked_at,
		 updated_at = excluded.updated_at`,
		ident.UserID, ident.UUID, ident.Username, ident.DisplayName, ident.Email,
		s.box.Seal(purposeAccess, []byte(tok.AccessToken)), s.box.Seal(purposeRefresh, []byte(tok.RefreshToken)),
		nullTime(tok.ExpiresAt), strings.Join(tok.Scopes, " "), now, now, now, now)
	if err != nil {
		return fmt.Errorf("db: store identity: %w", err)
	}
	return nil
}

const identityColumns = `id, user_id, bitbucket_uuid, username, display_name, email, access_token, refresh_token,
	token_expires_at, scopes, status, status_reason, connected_at, verified_at, check_error, checked_at`

func (s *Store) scanIdentity(row interface{ Scan(...any) error }) (tether.Identity, error) {
	var (
		i                                     tether.Identity
		access, refresh                       []byte
		expires, connected, verified, checked sql.NullTime
		scopes                                string
	)
	err := row.Scan(&i.ID, &i.UserID, &i.UUID, &i.Username, &i.DisplayName, &i.Email, &access, &refresh,
		&expires, &scopes, &i.Status, &i.StatusReason, &connected, &verified, &i.CheckError, &checked)
	if err != nil {
		return tether.Identity{}, notFound(err)
	}
	a, err := s.box.Open(purposeAccess, access)
	if err != nil {
		return tether.Identity{}, err
	}
	r, err := s.box.Open(purposeRefresh, refresh)
	if err != nil {
		return tether.Identity{}, err
	}
	i.AccessToken, i.RefreshToken = string(a), string(r)
	i.TokenExpiresAt, i.ConnectedAt, i.VerifiedAt, i.CheckedAt = expires.Time, connected.Time, verified.Time, checked.Time
	i.Scopes = strings.Fields(scopes)
	return i, nil
}

// IdentityByUUID returns the identity with that Bitbucket uuid.
func (s *Store) IdentityByUUID(ctx context.Context, uuid string) (tether.Identity, error) {
	return s.scanIdentity(s.readRow(ctx, `SELECT `+identityColumns+` FROM bitbucket_identities WHERE bitbucket_uuid = ?`, uuid))
}

// IdentityByUser returns the user's Bitbucket identity.
func (s *Store) IdentityByUser(ctx context.Context, userID int64) (tether.Identity, error) {
	return s.scanIdentity(s.readRow(ctx, `SELECT `+identityColumns+` FROM bitbucket_identities WHERE user_id = ?`, userID))
}

// IdentityForUpdate reads the identity through the writer, so a caller that
// holds the identity's refresh lock sees the latest committed tokens.
func (s *Store) IdentityForUpdate(ctx context.Context, userID int64) (tether.Identity, error) {
	return s.scanIdentity(s.write.QueryRowContext(ctx, `SELECT `+identityColumns+` FROM bitbucket_identities WHERE user_id = ?`, userID))
}

// RotateTokens stores a refreshed token pair, only if the refresh token used
// is still the stored one (so a concurrent disconnect or rotation wins).
func (s *Store) RotateTokens(ctx context.Context, identityID int64, usedRefresh string, tok tether.Token) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var sealed []byte
		var status string
		err := tx.QueryRowContext(ctx, `SELECT refresh_token, status FROM bitbucket_identities WHERE id = ?`, identityID).Scan(&sealed, &status)
		if err != nil {
			return notFound(err)
		}
		cur, err := s.box.Open(purposeRefresh, sealed)
		if err != nil {
			return err
		}
		if status != tether.Connected || string(cur) != usedRefresh {
			return tether.ErrNotFound
		}
		scopes := strings.Join(tok.Scopes, " ")
		_, err = tx.ExecContext(ctx, `UPDATE bitbucket_identities SET access_token = ?, refresh_token = ?,
			token_expires_at = ?, scopes = CASE WHEN ? = '' THEN scopes ELSE ? END, updated_at = ? WHERE id = ?`,
			s.box.Seal(purposeAccess, []byte(tok.AccessToken)), s.box.Seal(purposeRefresh, []byte(tok.RefreshToken)),
			nullTime(tok.ExpiresAt), scopes, scopes, s.now(), identityID)
		return err
	})
}

// MarkVerified records a successful check against Bitbucket.
func (s *Store) MarkVerified(ctx context.Context, identityID int64, username, displayName string, scopes []string) error {
	now := s.now()
	_, err := s.write.ExecContext(ctx, `UPDATE bitbucket_identities SET verified_at = ?, checked_at = ?, check_error = '',
		username = ?, display_name = ?, scopes = CASE WHEN ? = '' THEN scopes ELSE ? END, updated_at = ?
		WHERE id = ? AND status = 'connected'`,
		now, now, username, displayName, strings.Join(scopes, " "), strings.Join(scopes, " "), now, identityID)
	return err
}

// MarkCheckFailed records a transient failure; the status stays as it was.
func (s *Store) MarkCheckFailed(ctx context.Context, identityID int64, message string) error {
	now := s.now()
	_, err := s.write.ExecContext(ctx, `UPDATE bitbucket_identities SET check_error = ?, checked_at = ?, updated_at = ? WHERE id = ?`,
		message, now, now, identityID)
	return err
}

// MarkNotConnected forgets the identity's tokens and records why: the
// person disconnected (actorID is theirs) or Tether found the grant revoked
// (actorID 0). The audit log of each of their organizations says so.
func (s *Store) MarkNotConnected(ctx context.Context, identityID int64, reason string, actorID int64) error {
	now := s.now()
	return s.tx(ctx, func(tx *sql.Tx) error {
		var userID int64
		var status, username string
		err := tx.QueryRowContext(ctx, `SELECT user_id, status, username FROM bitbucket_identities WHERE id = ?`, identityID).Scan(&userID, &status, &username)
		if err != nil {
			return notFound(err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE bitbucket_identities SET status = 'not_connected', status_reason = ?,
			access_token = NULL, refresh_token = NULL, token_expires_at = NULL, check_error = '', checked_at = ?, updated_at = ?
			WHERE id = ?`, reason, now, now, identityID); err != nil {
			return err
		}
		if status != tether.Connected {
			return nil
		}
		action := "Bitbucket disconnected"
		if actorID == 0 {
			action = "revocation detected"
		}
		return s.insertUserAudit(ctx, tx, userID, actorID, action, "@"+username+": "+reason)
	})
}
