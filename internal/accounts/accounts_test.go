package accounts

import (
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// The hash an unknown e-mail's login is compared against costs what a
// stored one does (bcrypt.DefaultCost, as SignUp hashes), so the login's
// time does not say whether the account exists.
func TestDummyHashCostsWhatAStoredOneDoes(t *testing.T) {
	t.Parallel()
	cost, err := bcrypt.Cost(dummyHash)
	if err != nil || cost != bcrypt.DefaultCost {
		t.Fatalf("the dummy hash's cost is %d (%v), stored hashes' %d", cost, err, bcrypt.DefaultCost)
	}
}
