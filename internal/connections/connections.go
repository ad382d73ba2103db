// Package connections keeps each user's Bitbucket connection honest: it
// hands out a working access token (refreshing an expired one, one refresh
// at a time per identity), checks the connection against Bitbucket, and
// turns a revoked grant into "Not Connected" — while a network blip, 5xx or
// rate limit never does.
package connections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"tether/internal/bitbucket"
	"tether/internal/problem"
	"tether/internal/tether"
)

// Reasons a connection is Not Connected.
const (
	ReasonRevoked      = "access was revoked on Bitbucket"
	ReasonDisconnected = "disconnected in Tether"
)

// ErrNotConnected: the user has no working Bitbucket connection.
var ErrNotConnected = problem.New(problem.Forbidden, "Bitbucket is not connected. Grant access on your account page first.")

// Store is the part of the database the connections use.
type Store interface {
	IdentityByUser(ctx context.Context, userID int64) (tether.Identity, error)
	IdentityForUpdate(ctx context.Context, userID int64) (tether.Identity, error)
	RotateTokens(ctx context.Context, identityID int64, usedRefresh string, tok tether.Token) error
	MarkVerified(ctx context.Context, identityID int64, username, displayName string, scopes []string) error
	MarkCheckFailed(ctx context.Context, identityID int64, message string) error
	MarkNotConnected(ctx context.Context, identityID int64, reason string, actorID int64) error
}

// Bitbucket is the part of the client the connections use.
type Bitbucket interface {
	Refresh(ctx context.Context, refreshToken string) (bitbucket.Token, error)
	CurrentUser(ctx context.Context, accessToken string) (bitbucket.User, []string, error)
}

// Service manages connections.
type Service struct {
	// Stale is how old the last check may be before a badge poll starts a
	// new one in the background; it bounds the /user calls a watched page
	// costs (at most one per Stale per person, against Bitbucket's budget
	// of about 1,000 calls an hour).
	Stale time.Duration
	// CheckTimeout bounds one check, so a stalled Bitbucket answers
	// "could not reach" instead of hanging the page.
	CheckTimeout time.Duration

	log    *slog.Logger
	store  Store
	bb     Bitbucket
	now    func() time.Time
	expiry time.Duration // refresh this long before the token expires

	mu      sync.Mutex
	locks   map[int64]*sync.Mutex // per user: one refresh at a time
	running map[int64]bool        // background checks in flight
}

// New returns the connections service.
func New(log *slog.Logger, store Store, bb Bitbucket) *Service {
	return &Service{
		log: log, store: store, bb: bb,
		Stale:        12 * time.Second,
		CheckTimeout: 10 * time.Second,
		now:          time.Now,
		expiry:       time.Minute,
		locks:        map[int64]*sync.Mutex{},
		running:      map[int64]bool{},
	}
}

// Identity returns the stored connection of a user; tether.ErrNotFound when the
// user never connected Bitbucket.
func (s *Service) Identity(ctx context.Context, userID int64) (tether.Identity, error) {
	return s.store.IdentityByUser(ctx, userID)
}

func (s *Service) lock(userID int64) *sync.Mutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.locks[userID]
	if !ok {
		l = &sync.Mutex{}
		s.locks[userID] = l
	}
	return l
}

// Token returns a working access token for the user, refreshing it first
// when it has expired.
func (s *Service) Token(ctx context.Context, userID int64) (string, error) {
	ident, err := s.store.IdentityByUser(ctx, userID)
	if err != nil {
		if errors.Is(err, tether.ErrNotFound) {
			return "", ErrNotConnected
		}
		return "", err
	}
	if ident.Status != tether.Connected {
		return "", ErrNotConnected
	}
	if s.fresh(ident) {
		return ident.AccessToken, nil
	}
	return s.refresh(ctx, userID, ident.AccessToken)
}

func (s *Service) fresh(ident tether.Identity) bool {
	return ident.TokenExpiresAt.IsZero() || s.now().Add(s.expiry).Before(ident.TokenExpiresAt)
}

// refresh replaces the access token stale with a new one. Under the user's
// lock it re-reads the identity: when another request already refreshed,
// that token is used and Bitbucket is not asked again.
func (s *Service) refresh(ctx context.Context, userID int64, stale string) (string, error) {
	l := s.lock(userID)
	l.Lock()
	defer l.Unlock()
	ident, err := s.store.IdentityForUpdate(ctx, userID)
	if err != nil {
		return "", err
	}
	if ident.Status != tether.Connected {
		return "", ErrNotConnected
	}
	if ident.AccessToken != stale && s.fresh(ident) {
		return ident.AccessToken, nil
	}
	tok, err := s.bb.Refresh(ctx, ident.RefreshToken)
	if errors.Is(err, bitbucket.ErrInvalidGrant) {
		s.revoked(ctx, ident)
		return "", ErrNotConnected
	}
	if err != nil {
		return "", err
	}
	// Bitbucket has rotated the refresh token: storing the new one must
	// not be cut short by the caller's deadline, or the connection would
	// be lost at the next refresh.
	err = s.store.RotateTokens(context.WithoutCancel(ctx), ident.ID, ident.RefreshToken, tether.Token{
		AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, ExpiresAt: tok.Expiry, Scopes: tok.Scopes,
	})
	if err != nil {
		return "", fmt.Errorf("connections: store refreshed token: %w", err)
	}
	return tok.AccessToken, nil
}

func (s *Service) revoked(ctx context.Context, ident tether.Identity) {
	s.log.Info("bitbucket connection revoked", "user_id", ident.UserID, "bitbucket_user", ident.Username)
	if err := s.store.MarkNotConnected(context.WithoutCancel(ctx), ident.ID, ReasonRevoked, 0); err != nil {
		s.log.Error("mark connection revoked", "user_id", ident.UserID, "err", err)
	}
}

// Do calls fn with a working token for the user. When Bitbucket answers 401
// the token is refreshed once and fn tried again; a 401 after that means the
// grant is gone, and the connection becomes Not Connected.
func (s *Service) Do(ctx context.Context, userID int64, fn func(token string) error) error {
	token, err := s.Token(ctx, userID)
	if err != nil {
		return err
	}
	err = fn(token)
	if !bitbucket.IsUnauthorized(err) {
		return err
	}
	token, err = s.refresh(ctx, userID, token)
	if err != nil {
		return err
	}
	err = fn(token)
	if bitbucket.IsUnauthorized(err) {
		if ident, ierr := s.store.IdentityByUser(ctx, userID); ierr == nil {
			s.revoked(ctx, ident)
		}
		return ErrNotConnected
	}
	return err
}

// Check verifies the connection against Bitbucket now and returns the
// stored result. A transient failure is recorded as such and leaves the
// status as it was.
func (s *Service) Check(ctx context.Context, userID int64) (tether.Identity, error) {
	callCtx, cancel := context.WithTimeout(ctx, s.CheckTimeout)
	defer cancel()
	var (
		user   bitbucket.User
		scopes []string
	)
	err := s.Do(callCtx, userID, func(token string) error {
		var err error
		user, scopes, err = s.bb.CurrentUser(callCtx, token)
		return err
	})
	ident, ierr := s.store.IdentityByUser(ctx, userID)
	if ierr != nil {
		return tether.Identity{}, ierr
	}
	switch {
	case err == nil:
		err = s.store.MarkVerified(ctx, ident.ID, user.Username, user.DisplayName, scopes)
	case errors.Is(err, ErrNotConnected):
		err = nil // already recorded by Do
	default:
		s.log.Warn("bitbucket connection check failed", "user_id", userID, "err", err)
		err = s.store.MarkCheckFailed(ctx, ident.ID, "could not reach Bitbucket, will retry")
	}
	if err != nil {
		return tether.Identity{}, err
	}
	return s.store.IdentityByUser(ctx, userID)
}

// CheckIfStale starts a check in the background when the last one is older
// than the staleness window. It never waits: badge polls call it and render
// what is stored.
func (s *Service) CheckIfStale(ident tether.Identity) {
	if ident.Status != tether.Connected || s.now().Sub(ident.CheckedAt) < s.Stale {
		return
	}
	s.mu.Lock()
	if s.running[ident.UserID] {
		s.mu.Unlock()
		return
	}
	s.running[ident.UserID] = true
	s.mu.Unlock()
	go func() {
		defer func() {
			s.mu.Lock()
			delete(s.running, ident.UserID)
			s.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := s.Check(ctx, ident.UserID); err != nil {
			s.log.Error("background connection check", "user_id", ident.UserID, "err", err)
		}
	}()
}

// Checking reports whether a background check for the user is running.
func (s *Service) Checking(userID int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running[userID]
}

// Disconnect forgets the user's tokens; the identity stays linked so the
// person can log in with Bitbucket and connect again.
func (s *Service) Disconnect(ctx context.Context, userID int64) error {
	l := s.lock(userID)
	l.Lock()
	defer l.Unlock()
	ident, err := s.store.IdentityByUser(ctx, userID)
	if errors.Is(err, tether.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.store.MarkNotConnected(ctx, ident.ID, ReasonDisconnected, userID)
}
