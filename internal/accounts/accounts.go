// Package accounts is how people get into Tether: e-mail and password
// accounts, sign-up and login with Bitbucket, granting Bitbucket access to
// an existing account, and the sessions that follow. It never merges a
// Bitbucket identity into a password account because e-mails match.
package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"runtime"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"tether/internal/problem"
	"tether/internal/tether"
)

// SessionTTL is how long a login lasts.
const SessionTTL = 14 * 24 * time.Hour

// Field limits. An e-mail address is at most 254 octets (RFC 5321,
// section 4.5.3.1.3: a 256-octet path less its angle brackets); bcrypt
// reads at most 72 bytes of a password.
const (
	MaxEmail    = 254
	MaxName     = 100
	MaxPassword = 72
)

// Store is the part of the database accounts use.
type Store interface {
	CreatePasswordUser(ctx context.Context, name, email, passwordHash string) (tether.User, error)
	PasswordHash(ctx context.Context, email string) (int64, string, error)
	UserByID(ctx context.Context, id int64) (tether.User, error)
	CreateBitbucketUser(ctx context.Context, name string, ident tether.Identity, tok tether.Token) (tether.User, error)
	ConnectIdentity(ctx context.Context, userID int64, ident tether.Identity, tok tether.Token) error
	IdentityByUUID(ctx context.Context, uuid string) (tether.Identity, error)
	CreateSession(ctx context.Context, tokenHash []byte, userID int64, expires time.Time) error
	SessionUser(ctx context.Context, tokenHash []byte) (tether.User, error)
	DeleteSession(ctx context.Context, tokenHash []byte) error
	Memberships(ctx context.Context, userID int64) ([]tether.Membership, error)
}

// Service signs people up and in.
type Service struct {
	log   *slog.Logger
	store Store
	// hashing admits this many bcrypt computations at once (half the
	// CPUs), so a flood of passwords from many addresses — each under its
	// throttle — still leaves CPU for every other request.
	hashing chan struct{}
}

// New returns the accounts service.
func New(log *slog.Logger, store Store) *Service {
	return &Service{log: log, store: store, hashing: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2))}
}

// dummyHash is compared against when an e-mail is unknown, so a failed
// login takes as long whether or not the account exists: a bcrypt hash
// at bcrypt.DefaultCost (as every stored one) of a random password
// nobody kept. A constant, so starting Tether computes no hash (one is
// 60 ms of CPU, and under the race detector 0.8 s for every test that
// starts Tether).
var dummyHash = []byte("$2a$10$LjtjPzA2O/HphXNkBFWG3OE.mE8Kol.6hgCUi0bVzc/0RC.uzXPMi")

// hash runs fn (a bcrypt computation) when a hashing slot is free, or
// gives up when ctx ends first.
func (s *Service) hash(ctx context.Context, fn func()) error {
	select {
	case s.hashing <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.hashing }()
	fn()
	return nil
}

// SignUp creates an e-mail and password account.
func (s *Service) SignUp(ctx context.Context, name, email, password string) (tether.User, error) {
	name, email = strings.TrimSpace(name), strings.TrimSpace(email)
	err := validateSignUp(name, email, password)
	if err != nil {
		return tether.User{}, err
	}
	var hash []byte
	if err := s.hash(ctx, func() { hash, err = bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost) }); err != nil {
		return tether.User{}, err
	}
	if err != nil {
		return tether.User{}, fmt.Errorf("accounts: hash password: %w", err)
	}
	u, err := s.store.CreatePasswordUser(ctx, name, email, string(hash))
	if errors.Is(err, tether.ErrEmailTaken) {
		return tether.User{}, ErrEmailTaken
	}
	return u, err
}

// ErrEmailTaken is the answer to signing up with an address some account
// already has. It says the same whichever kind of account that is (made
// with e-mail or through Bitbucket), so it tells no more than that the
// address is taken; the password is hashed before the lookup either way,
// so the answer takes as long as a successful sign-up.
var ErrEmailTaken = problem.Field("email", "An account with this e-mail already exists. Log in instead, with your e-mail and password or with Bitbucket.")

func validateSignUp(name, email, password string) error {
	switch {
	case name == "":
		return problem.Field("name", "Enter your name.")
	case utf8.RuneCountInString(name) > MaxName:
		return problem.Field("name", "Keep your name under 100 characters.")
	}
	if err := validateEmail(email); err != nil {
		return err
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || !strings.Contains(email[strings.LastIndex(email, "@"):], ".") {
		return problem.Field("email", "Enter an e-mail address like name@example.com.")
	}
	switch {
	case utf8.RuneCountInString(password) < 10:
		return problem.Field("password", "Use at least 10 characters for your password.")
	}
	return validatePassword(password)
}

// validateEmail refuses an address longer than any address can be, with
// a message for the e-mail field.
func validateEmail(email string) error {
	if len(email) > MaxEmail {
		return problem.Field("email", "An e-mail address has at most 254 characters; this one has %d.", utf8.RuneCountInString(email))
	}
	return nil
}

func validatePassword(password string) error {
	if len(password) > MaxPassword {
		return problem.Field("password", "Use at most 72 bytes for your password.")
	}
	return nil
}

// ErrBadLogin is the one answer to a wrong e-mail or password: it does not
// say which, so it does not reveal who has an account.
var ErrBadLogin = problem.New(problem.Invalid, "That e-mail and password do not match an account.")

// LogIn checks an e-mail and password.
// An address or password longer than any account can have is refused on
// its field before anything is looked up.
func (s *Service) LogIn(ctx context.Context, email, password string) (tether.User, error) {
	email = strings.TrimSpace(email)
	if err := errors.Join(validateEmail(email), validatePassword(password)); err != nil {
		return tether.User{}, err
	}
	id, hash, err := s.store.PasswordHash(ctx, email)
	if errors.Is(err, tether.ErrNotFound) {
		if err := s.hash(ctx, func() { bcrypt.CompareHashAndPassword(dummyHash, []byte(password)) }); err != nil {
			return tether.User{}, err
		}
		return tether.User{}, ErrBadLogin
	}
	if err != nil {
		return tether.User{}, err
	}
	var mismatch error
	if err := s.hash(ctx, func() { mismatch = bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) }); err != nil {
		return tether.User{}, err
	}
	if mismatch != nil {
		return tether.User{}, ErrBadLogin
	}
	return s.store.UserByID(ctx, id)
}

// Profile is the Bitbucket account someone signed in or granted access as.
type Profile struct {
	UUID, Username, DisplayName, Email string
}

func (p Profile) identity() tether.Identity {
	return tether.Identity{UUID: p.UUID, Username: p.Username, DisplayName: p.DisplayName, Email: p.Email}
}

// LogInWithBitbucket finds the account linked to the Bitbucket identity, or
// creates one from the profile. It reports whether the account is new.
func (s *Service) LogInWithBitbucket(ctx context.Context, p Profile, tok tether.Token) (tether.User, bool, error) {
	ident, err := s.store.IdentityByUUID(ctx, p.UUID)
	switch {
	case err == nil:
		if err := s.store.ConnectIdentity(ctx, ident.UserID, p.identity(), tok); err != nil {
			return tether.User{}, false, err
		}
		u, err := s.store.UserByID(ctx, ident.UserID)
		return u, false, err
	case !errors.Is(err, tether.ErrNotFound):
		return tether.User{}, false, err
	}
	name := p.DisplayName
	if name == "" {
		name = p.Username
	}
	u, err := s.store.CreateBitbucketUser(ctx, name, p.identity(), tok)
	if errors.Is(err, tether.ErrIdentityTaken) {
		// Another request created it between our read and write.
		return s.LogInWithBitbucket(ctx, p, tok)
	}
	return u, err == nil, err
}

// Connect links the Bitbucket identity to an existing account (Grant
// access). An identity linked to another account is refused and nothing
// changes for either account.
func (s *Service) Connect(ctx context.Context, userID int64, p Profile, tok tether.Token) error {
	err := s.store.ConnectIdentity(ctx, userID, p.identity(), tok)
	if errors.Is(err, tether.ErrIdentityTaken) {
		return problem.New(problem.Conflict,
			"The Bitbucket account @%s is already linked to another Tether account. Log in with Bitbucket to use that account, or sign in to it and disconnect Bitbucket first.",
			p.Username)
	}
	return err
}

// Session is a person just signed in.
type Session struct {
	Token  string // the new session's cookie value
	Member bool   // they belong to an organization; if not, setting one up comes first
}

// SignIn rotates the person's session: the browser's previous one
// (its cookie value; "" for none) ends and a new one starts, so a sign-in
// always gets a new token and a token planted before it is worthless. It
// also says whether they belong to an organization yet.
func (s *Service) SignIn(ctx context.Context, userID int64, previous string) (Session, error) {
	if err := s.EndSession(ctx, previous); err != nil {
		return Session{}, err
	}
	token, err := s.startSession(ctx, userID)
	if err != nil {
		return Session{}, err
	}
	ms, err := s.store.Memberships(ctx, userID)
	if err != nil {
		return Session{}, fmt.Errorf("accounts: memberships: %w", err)
	}
	return Session{Token: token, Member: len(ms) > 0}, nil
}

// startSession creates a session for the user and returns the cookie value.
func (s *Service) startSession(ctx context.Context, userID int64) (string, error) {
	raw := make([]byte, 32)
	rand.Read(raw)
	token := base64.RawURLEncoding.EncodeToString(raw)
	if err := s.store.CreateSession(ctx, hashToken(token), userID, time.Now().Add(SessionTTL)); err != nil {
		return "", fmt.Errorf("accounts: start session: %w", err)
	}
	return token, nil
}

// SessionUser returns the user of a live session.
func (s *Service) SessionUser(ctx context.Context, token string) (tether.User, error) {
	if token == "" {
		return tether.User{}, tether.ErrNotFound
	}
	return s.store.SessionUser(ctx, hashToken(token))
}

// EndSession logs out.
func (s *Service) EndSession(ctx context.Context, token string) error {
	if token == "" {
		return nil
	}
	return s.store.DeleteSession(ctx, hashToken(token))
}

func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}
