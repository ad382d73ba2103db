// Package connections keeps each user's Bitbucket connection honest: it
// hands out a working access token (refreshing an expired one, one refresh
// at a time per identity), checks the connection against Bitbucket, and
// turns a refused grant into "Not Connected" — while a network blip, 5xx or
// rate limit never does. Only the account itself decides that: the token
// endpoint refusing the refresh token, or GET /user refusing a token
// Bitbucket has just issued; a 401, 403 or 404 about one repository,
// workspace or endpoint is about that one thing. A token endpoint that
// refuses Tether's own client credentials is a configuration fault for
// admins (ClientFault), not anyone's revoked grant.
package connections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
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

// ErrClientRefused: Bitbucket's token endpoint refuses Tether's OAuth
// consumer key or secret, so no access token can be renewed. The
// person's grant is not the cause and stays as it is.
var ErrClientRefused = problem.New(problem.Unavailable, "Bitbucket refuses Tether's OAuth consumer key or secret, so Tether cannot renew access to Bitbucket. An administrator must correct BITBUCKET_CLIENT_ID and BITBUCKET_CLIENT_SECRET; your own grant is unchanged.")

// ClientFault is the token endpoint refusing Tether's own OAuth client
// credentials: a configuration error that admins must fix.
type ClientFault struct {
	Reason string    // Bitbucket's words, e.g. "invalid_client: Invalid OAuth client credentials"
	Since  time.Time // the first refusal since the credentials last worked
}

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
	// new one in the background; it bounds the /user calls a watched
	// account badge costs (at most one per Stale per person, against
	// Bitbucket's budget of about 1,000 calls an hour).
	Stale time.Duration
	// Coalesce is how recent a check must have started to answer a
	// "Check now" press without a new call: presses in quick succession
	// share one check.
	Coalesce time.Duration
	// CheckTimeout bounds one check, so a stalled Bitbucket answers
	// "could not reach" instead of hanging the page.
	CheckTimeout time.Duration

	log    *slog.Logger
	store  Store
	bb     Bitbucket
	now    func() time.Time
	expiry time.Duration // refresh this long before the token expires

	mu     sync.Mutex
	locks  map[int64]*sync.Mutex // per user: one refresh at a time
	checks map[int64]*flight     // per user: the latest check, running or done
	fault  ClientFault           // the token endpoint refusing Tether itself; zero when it does not
	// tokensPaused is when the token endpoint's last 429 ends: until then
	// no refresh is sent (Bitbucket would only refuse it again).
	tokensPaused time.Time
}

// flight is one check of a connection; done closes when it ends.
type flight struct {
	started time.Time
	done    chan struct{}
	err     error
}

func (f *flight) running() bool {
	select {
	case <-f.done:
		return false
	default:
		return true
	}
}

// New returns the connections service.
func New(log *slog.Logger, store Store, bb Bitbucket) *Service {
	return &Service{
		log: log, store: store, bb: bb,
		Stale:        5 * time.Minute,
		Coalesce:     5 * time.Second,
		CheckTimeout: 10 * time.Second,
		now:          time.Now,
		expiry:       time.Minute,
		locks:        map[int64]*sync.Mutex{},
		checks:       map[int64]*flight{},
	}
}

// SetClock replaces the service's clock (tests that fake an hour).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

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
	if until := s.tokenPause(); !until.IsZero() {
		return "", &bitbucket.BudgetError{Until: until, Paused: true}
	}
	tok, err := s.bb.Refresh(ctx, ident.RefreshToken)
	var be *bitbucket.Error
	switch {
	case errors.Is(err, bitbucket.ErrGrantRefused):
		// The refresh token is dead: forgetting it (MarkNotConnected)
		// means it is never sent again.
		reason := ReasonRevoked
		if errors.As(err, &be) && be.Message != "" {
			reason += " (Bitbucket refused to renew access: " + be.Message + ")"
		}
		s.revoked(ctx, ident, reason)
		return "", ErrNotConnected
	case errors.Is(err, bitbucket.ErrInvalidClient):
		if errors.As(err, &be) {
			s.ClientRefused(be.Message)
		}
		return "", fmt.Errorf("%w: %w", ErrClientRefused, err)
	case errors.As(err, &be) && be.Status == http.StatusTooManyRequests:
		return "", &bitbucket.BudgetError{Until: s.pauseTokens(be.RetryAfter), Paused: true}
	case err != nil:
		return "", err
	}
	s.ClientAccepted()
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

// revoked records that Bitbucket refused the account itself, forgetting
// its tokens.
func (s *Service) revoked(ctx context.Context, ident tether.Identity, reason string) {
	s.log.Info("bitbucket connection revoked", "user_id", ident.UserID, "bitbucket_user", ident.Username, "reason", reason)
	if err := s.store.MarkNotConnected(context.WithoutCancel(ctx), ident.ID, reason, 0); err != nil {
		s.log.Error("mark connection revoked", "user_id", ident.UserID, "err", err)
	}
}

// defaultTokenPause is how long a 429 from the token endpoint without a
// usable Retry-After holds refreshes back.
const defaultTokenPause = time.Minute

// tokenPause is when the token endpoint's rate limiting ends, zero when
// it does not apply now.
func (s *Service) tokenPause() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.now().Before(s.tokensPaused) {
		return s.tokensPaused
	}
	return time.Time{}
}

// pauseTokens holds refreshes back for retryAfter (a minute when the 429
// named none) and returns when that ends.
func (s *Service) pauseTokens(retryAfter time.Duration) time.Time {
	if retryAfter <= 0 {
		retryAfter = defaultTokenPause
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if until := s.now().Add(retryAfter); until.After(s.tokensPaused) {
		s.tokensPaused = until
	}
	return s.tokensPaused
}

// ClientRefused records that Bitbucket's token endpoint refused Tether's
// OAuth client credentials, with Bitbucket's reason: admins see it until
// the token endpoint accepts them again (ClientAccepted).
func (s *Service) ClientRefused(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fault.Since.IsZero() {
		s.log.Error("Bitbucket refuses Tether's OAuth consumer key or secret; check BITBUCKET_CLIENT_ID and BITBUCKET_CLIENT_SECRET", "reason", reason)
		s.fault.Since = s.now()
	}
	s.fault.Reason = reason
}

// ClientAccepted records that the token endpoint accepted Tether's client
// credentials (a refresh or a sign-in went through).
func (s *Service) ClientAccepted() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = ClientFault{}
}

// ClientFault returns the token endpoint's refusal of Tether's own client
// credentials, if it refuses them now.
func (s *Service) ClientFault() (ClientFault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fault, !s.fault.Since.IsZero()
}

// Do calls fn with a working token for the user and a context whose
// Bitbucket calls spend that user's connection budget
// (bitbucket.WithConnection): fn must make its calls with that ctx. When
// Bitbucket answers 401 the token is refreshed once and fn tried again. A
// 401 after that decides the connection only if the account itself is
// refused: GET /user with that fresh token answering 401 makes the
// connection Not Connected (ErrNotConnected); otherwise the 401 was about
// what fn asked for, and is returned as it is.
func (s *Service) Do(ctx context.Context, userID int64, fn func(ctx context.Context, token string) error) error {
	ctx = bitbucket.WithConnection(ctx, userID)
	token, err := s.Token(ctx, userID)
	if err != nil {
		return err
	}
	err = fn(ctx, token)
	if !bitbucket.IsUnauthorized(err) {
		return err
	}
	token, err = s.refresh(ctx, userID, token)
	if err != nil {
		return err
	}
	err = fn(ctx, token)
	if !bitbucket.IsUnauthorized(err) {
		return err
	}
	_, _, uerr := s.bb.CurrentUser(ctx, token)
	if !bitbucket.IsUnauthorized(uerr) {
		return err
	}
	if ident, ierr := s.store.IdentityByUser(ctx, userID); ierr == nil {
		s.revoked(ctx, ident, ReasonRevoked+" (Bitbucket refused a freshly issued access token for the account)")
	}
	return ErrNotConnected
}

// Check verifies the connection against Bitbucket and returns the stored
// result. A check that started less than Coalesce ago, or is running,
// answers instead of a new one: "Check now" pressed again and again costs
// one GET /user. A transient failure is recorded as such and leaves the
// status as it was.
func (s *Service) Check(ctx context.Context, userID int64) (tether.Identity, error) {
	return s.CheckWithin(ctx, userID, s.Coalesce)
}

// CheckWithin is Check answered by any check that started no more than
// maxAge ago.
func (s *Service) CheckWithin(ctx context.Context, userID int64, maxAge time.Duration) (tether.Identity, error) {
	return s.check(ctx, userID, s.now().Add(-maxAge))
}

// check runs a check of the user's connection, or joins one that started
// no earlier than notBefore, and returns the stored result.
func (s *Service) check(ctx context.Context, userID int64, notBefore time.Time) (tether.Identity, error) {
	for {
		s.mu.Lock()
		f := s.checks[userID]
		switch {
		case f != nil && !f.started.Before(notBefore):
			s.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return tether.Identity{}, ctx.Err()
			}
			if f.err != nil {
				return tether.Identity{}, f.err
			}
			return s.store.IdentityByUser(ctx, userID)
		case f != nil && f.running():
			// One check at a time: wait for the older one, then look again.
			s.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return tether.Identity{}, ctx.Err()
			}
			continue
		}
		f = &flight{started: s.now(), done: make(chan struct{})}
		s.checks[userID] = f
		s.mu.Unlock()
		f.err = s.verify(ctx, userID)
		close(f.done)
		if f.err != nil {
			return tether.Identity{}, f.err
		}
		return s.store.IdentityByUser(ctx, userID)
	}
}

// verify asks Bitbucket who the token belongs to (GET /user) and records
// the answer. A background check the budget held back records nothing.
func (s *Service) verify(ctx context.Context, userID int64) error {
	callCtx, cancel := context.WithTimeout(ctx, s.CheckTimeout)
	defer cancel()
	var (
		user   bitbucket.User
		scopes []string
	)
	err := s.Do(callCtx, userID, func(ctx context.Context, token string) error {
		var err error
		user, scopes, err = s.bb.CurrentUser(ctx, token)
		return err
	})
	if _, deferred := bitbucket.Deferred(err); deferred && bitbucket.PriorityOf(ctx) == bitbucket.Background {
		return nil
	}
	ident, ierr := s.store.IdentityByUser(ctx, userID)
	if ierr != nil {
		return ierr
	}
	switch {
	case err == nil:
		err = s.store.MarkVerified(ctx, ident.ID, user.Username, user.DisplayName, scopes)
	case errors.Is(err, ErrNotConnected):
		err = nil // already recorded by Do
	default:
		s.log.Warn("bitbucket connection check failed", "user_id", userID, "err", err)
		err = s.store.MarkCheckFailed(ctx, ident.ID, s.couldNotCheck(err))
	}
	return err
}

// couldNotCheck says, for the account page, why a check gave no verdict:
// Tether's client credentials refused, Bitbucket rate limiting (and until
// when), a 5xx, Bitbucket's words on an unexpected answer, or no answer.
func (s *Service) couldNotCheck(err error) string {
	var budget *bitbucket.BudgetError
	var be *bitbucket.Error
	until, limited := bitbucket.RateLimited(err)
	switch {
	case errors.Is(err, ErrClientRefused):
		return "Bitbucket refuses Tether's OAuth consumer key or secret, so Tether cannot renew access; an administrator must correct BITBUCKET_CLIENT_ID and BITBUCKET_CLIENT_SECRET (your grant is unchanged)"
	case limited && !until.IsZero():
		return "Bitbucket is rate limiting Tether until " + bitbucket.WaitEnd(until) + "; Tether checks again then"
	case errors.As(err, &budget):
		return "this connection has spent its hourly Bitbucket API budget; Tether checks again at " + bitbucket.WaitEnd(budget.Until)
	case errors.As(err, &be) && be.Status == http.StatusTooManyRequests && be.RetryAfter > 0:
		return "Bitbucket is rate limiting Tether until " + bitbucket.WaitEnd(s.now().Add(be.RetryAfter)) + "; Tether checks again then"
	case errors.As(err, &be) && be.Status == http.StatusTooManyRequests:
		return "Bitbucket is rate limiting Tether; Tether checks again in a few minutes"
	case errors.As(err, &be) && be.Status >= 500:
		return fmt.Sprintf("Bitbucket answered %d, will retry", be.Status)
	case errors.As(err, &be):
		return fmt.Sprintf("Bitbucket answered %d (%s), will retry", be.Status, be.Reason())
	}
	return "could not reach Bitbucket, will retry"
}

// CheckIfStale starts a check in the background, at background priority,
// when the last one is older than Stale, and reports whether it started
// one (the check may finish before Checking would see it run, so a badge
// poll asks again soon on this answer). It never waits: badge polls call
// it and render what is stored.
func (s *Service) CheckIfStale(ident tether.Identity) bool {
	now := s.now()
	if ident.Status != tether.Connected || now.Sub(ident.CheckedAt) < s.Stale {
		return false
	}
	s.mu.Lock()
	f := s.checks[ident.UserID]
	if f != nil && (f.running() || now.Sub(f.started) < s.Stale) {
		s.mu.Unlock()
		return false
	}
	// The check is registered before the poll answers, so that answer
	// already says "checking" and the badge asks again a second later.
	f = &flight{started: now, done: make(chan struct{})}
	s.checks[ident.UserID] = f
	s.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		f.err = s.verify(bitbucket.WithPriority(ctx, bitbucket.Background), ident.UserID)
		close(f.done)
		if f.err != nil {
			s.log.Error("background connection check", "user_id", ident.UserID, "err", f.err)
		}
	}()
	return true
}

// Checking reports whether a check of the user's connection is running.
func (s *Service) Checking(userID int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.checks[userID]
	return f != nil && f.running()
}

// Disconnect forgets the user's tokens, and answers with the Status it
// left; the identity stays linked so the person can log in with Bitbucket
// and connect again.
func (s *Service) Disconnect(ctx context.Context, userID int64) (Status, error) {
	if err := s.disconnect(ctx, userID); err != nil {
		return Status{}, err
	}
	return s.Status(ctx, userID, true)
}

func (s *Service) disconnect(ctx context.Context, userID int64) error {
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
