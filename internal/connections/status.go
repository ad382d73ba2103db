package connections

import (
	"context"
	"errors"
	"time"

	"tether/internal/tether"
)

// Status is what the account page shows of a person's Bitbucket
// connection, read in one call. It carries no token.
type Status struct {
	// Linked: the person connected Bitbucket at some time. When false,
	// only ClientFault may be set.
	Linked      bool
	Connected   bool
	Username    string // Bitbucket's username and display name, as last verified
	DisplayName string
	Reason      string // why it is Not Connected (ReasonRevoked, ReasonDisconnected, …)
	CheckError  string // why the last check gave no verdict; "" when it did
	ConnectedAt time.Time
	VerifiedAt  time.Time
	Grant       Grant // what the granted scopes allow, and what they lack
	Checking    bool  // a check is running: a badge polls again soon
	// ClientFault is Bitbucket's reason for refusing Tether's own OAuth
	// client credentials (see ClientFault); "" while it accepts them.
	ClientFault string
}

// Status reads the user's connection as stored. A badge poll (poll true)
// also starts a check in the background when the last one is older than
// Stale (CheckIfStale), and then says Checking; it never waits for
// Bitbucket.
func (s *Service) Status(ctx context.Context, userID int64, poll bool) (Status, error) {
	var st Status
	if f, ok := s.ClientFault(); ok {
		st.ClientFault = f.Reason
	}
	ident, err := s.store.IdentityByUser(ctx, userID)
	if errors.Is(err, tether.ErrNotFound) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	started := poll && s.CheckIfStale(ident)
	st.Linked = true
	st.Connected = ident.Status == tether.Connected
	st.Username, st.DisplayName = ident.Username, ident.DisplayName
	st.Reason, st.CheckError = ident.StatusReason, ident.CheckError
	st.ConnectedAt, st.VerifiedAt = ident.ConnectedAt, ident.VerifiedAt
	st.Grant = Describe(ident.Scopes)
	st.Checking = started || s.Checking(userID)
	return st, nil
}

// CheckNow is "Check now" on the account page: Check, then the Status it
// left (as a badge poll reads it). Someone who never connected gets a
// Status that is not Linked.
func (s *Service) CheckNow(ctx context.Context, userID int64) (Status, error) {
	if _, err := s.Check(ctx, userID); err != nil && !errors.Is(err, tether.ErrNotFound) {
		return Status{}, err
	}
	return s.Status(ctx, userID, true)
}
