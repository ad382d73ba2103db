package tether

import (
	"time"
)

// User is a person with a Tether account.
type User struct {
	ID        int64
	Name      string
	Email     string // the password login's e-mail, else the Bitbucket one
	CreatedAt time.Time
}

// Connection states of a Bitbucket identity.
const (
	Connected    = "connected"
	NotConnected = "not_connected"
)

// Identity is a user's link to a Bitbucket account. Tokens are plaintext in
// memory and sealed in the table.
type Identity struct {
	ID             int64
	UserID         int64
	UUID           string
	Username       string
	DisplayName    string
	Email          string
	AccessToken    string
	RefreshToken   string
	TokenExpiresAt time.Time
	Scopes         []string
	Status         string
	StatusReason   string // why it is not connected
	ConnectedAt    time.Time
	VerifiedAt     time.Time // last successful check against Bitbucket
	CheckError     string    // last transient failure, cleared on success
	CheckedAt      time.Time
}

// Token is what a successful OAuth exchange or refresh gives.
type Token struct {
	AccessToken  string
	RefreshToken string
	ExpiresAt    time.Time
	Scopes       []string
}
