package emulator

import (
	"fmt"
	"time"
)

// GrantAccessToken records username's grant of the consumer, as pressing
// "Grant access" on the consent page does, and returns a fresh access
// token of that grant: for tests of API clients that need no OAuth dance.
func (e *Emulator) GrantAccessToken(username, consumerKey string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.consumer(consumerKey)
	if c == nil {
		return "", fmt.Errorf("no consumer %s", consumerKey)
	}
	if e.userByName(username) == nil {
		return "", fmt.Errorf("no user %s", username)
	}
	g := e.grantFor(username, c.Key)
	if g == nil {
		g = &grant{username: username, consumer: c.Key, created: time.Now()}
		e.grants = append(e.grants, g)
	}
	g.scopes = append([]string(nil), c.Scopes...)
	t := &token{access: randomToken(32), refresh: randomToken(12), g: g, expires: time.Now().Add(e.cfg.AccessTokenTTL)}
	e.access[t.access] = t
	e.refresh[t.refresh] = t
	return t.access, nil
}
