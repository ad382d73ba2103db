package tether

import "errors"

// Errors the store returns and services translate into messages for people.
var (
	// ErrNotFound: the row asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrEmailTaken: an account with that e-mail exists, as its login or
	// as its Bitbucket identity's e-mail.
	ErrEmailTaken = errors.New("e-mail already registered")
	// ErrIdentityTaken: the Bitbucket identity is linked to another user.
	ErrIdentityTaken = errors.New("bitbucket identity linked to another user")
	// ErrRepositoryTaken: a project for that repository exists.
	ErrRepositoryTaken = errors.New("repository already has a project")
	// ErrLastAdmin: the change would leave the organization without an admin.
	ErrLastAdmin = errors.New("the last admin cannot be removed or demoted")
	// ErrAlreadyMember: the person is already in the organization.
	ErrAlreadyMember = errors.New("already a member")
	// ErrInvitationUsed: accepted, revoked or expired.
	ErrInvitationUsed = errors.New("invitation no longer valid")
)
