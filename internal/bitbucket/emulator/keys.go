package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// DeployKey is a repository access key (Bitbucket's "deploy key"): read-only
// SSH access to one repository.
type DeployKey struct {
	ID        int
	Key       string // "ssh-ed25519 AAAA…", without the comment
	Label     string
	Comment   string
	CreatedOn time.Time
	LastUsed  time.Time // zero until the key is used over SSH
}

type deployKey struct {
	DeployKey
	blob string // the wire form of the public key, for matching SSH logins
}

// Bitbucket's messages for deploy key requests.
const (
	msgDuplicateKey = "Someone has already added that access key to this repository."
	msgBadKey       = "Invalid SSH key. Check that you copied the entire public key."
	msgNotAdmin     = "You must be an administrator of this repository to do that."
	msgNoKey        = "Deploy key not found"
)

// parseKey accepts one authorized_keys line without options, as Bitbucket
// does, and returns its canonical form, comment and wire form.
func parseKey(line string) (key, comment, blob string, err error) {
	pub, comment, options, rest, err := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(line)))
	if err != nil || len(options) > 0 || len(strings.TrimSpace(string(rest))) > 0 {
		return "", "", "", errors.New(msgBadKey)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))), comment, string(pub.Marshal()), nil
}

// AddDeployKey registers an authorized_keys line as a deploy key of the
// repository, as POST …/deploy-keys does.
func (e *Emulator) AddDeployKey(fullName, authorizedKey, label string) (DeployKey, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.repoByFullName(fullName)
	if r == nil {
		return DeployKey{}, fmt.Errorf("no repository %s", fullName)
	}
	k, err := e.addKey(r, authorizedKey, label)
	if err != nil {
		return DeployKey{}, err
	}
	return k.DeployKey, nil
}

func (e *Emulator) addKey(r *repo, line, label string) (*deployKey, error) {
	key, comment, blob, err := parseKey(line)
	if err != nil {
		return nil, err
	}
	for _, k := range r.keys {
		if k.blob == blob {
			return nil, errors.New(msgDuplicateKey)
		}
	}
	k := &deployKey{DeployKey: DeployKey{ID: e.nextKeyID, Key: key, Label: label, Comment: comment, CreatedOn: time.Now()}, blob: blob}
	e.nextKeyID++
	r.keys = append(r.keys, k)
	return k, nil
}

// NumberDeployKeysFrom makes the next deploy key's id id, as after the
// demo's restart, when the emulator (in memory) numbers keys from 1 again
// and an id Tether stored may name another key. Bitbucket itself never
// reuses an id.
func (e *Emulator) NumberDeployKeysFrom(id int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.nextKeyID = id
}

// DeployKeys lists the deploy keys of a repository.
func (e *Emulator) DeployKeys(fullName string) []DeployKey {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.repoByFullName(fullName)
	if r == nil {
		return nil
	}
	out := make([]DeployKey, 0, len(r.keys))
	for _, k := range r.keys {
		out = append(out, k.DeployKey)
	}
	return out
}

// DeleteDeployKey removes a deploy key, as someone doing it in Bitbucket's
// repository settings would.
func (e *Emulator) DeleteDeployKey(fullName string, id int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r := e.repoByFullName(fullName); r != nil {
		r.keys = slices.DeleteFunc(r.keys, func(k *deployKey) bool { return k.ID == id })
	}
}

// ReplaceDeployKeyMaterial swaps the public key behind a deploy key id, so
// the key on Bitbucket no longer matches the one its owner holds. An
// unparsable key is ignored.
func (e *Emulator) ReplaceDeployKeyMaterial(fullName string, id int, newAuthorizedKey string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	_ = e.replaceKeyMaterial(fullName, id, newAuthorizedKey)
}

func (e *Emulator) replaceKeyMaterial(fullName string, id int, line string) error {
	r := e.repoByFullName(fullName)
	if r == nil {
		return fmt.Errorf("no repository %s", fullName)
	}
	key, comment, blob, err := parseKey(line)
	if err != nil {
		return err
	}
	for _, k := range r.keys {
		if k.ID == id {
			k.Key, k.Comment, k.blob = key, comment, blob
			return nil
		}
	}
	return fmt.Errorf("no deploy key %d on %s", id, fullName)
}

func (e *Emulator) keyJSON(s site, r *repo, k *deployKey) map[string]any {
	var lastUsed any
	if !k.LastUsed.IsZero() {
		lastUsed = fmtTime(k.LastUsed)
	}
	return map[string]any{
		"type":       "deploy_key",
		"id":         k.ID,
		"key":        k.Key,
		"label":      k.Label,
		"comment":    k.Comment,
		"created_on": fmtTime(k.CreatedOn),
		"last_used":  lastUsed,
		"repository": repoRef(s, r),
		"links": map[string]any{
			"self": href(s.api() + "/repositories/" + repoPath(r) + "/deploy-keys/" + strconv.Itoa(k.ID)),
		},
	}
}

// adminRepo resolves the path's repository for an administrative endpoint:
// 404 when the caller cannot see it, 403 when they can but are no admin.
func (c *apiCall) adminRepo() (*repo, *reply) {
	r, rep := c.lookupRepo()
	if rep != nil {
		return nil, rep
	}
	if c.e.permission(c.user.Username, r) < permAdmin {
		rep := fail(http.StatusForbidden, msgNotAdmin)
		return nil, &rep
	}
	return r, nil
}

func fieldError(field, msg string) reply {
	return reply{status: http.StatusBadRequest, body: apiError{Type: "error",
		Error: errDetail{Message: msg, Fields: map[string][]string{field: {msg}}}}}
}

func apiListKeys(c *apiCall) reply {
	r, rep := c.adminRepo()
	if rep != nil {
		return *rep
	}
	values := make([]any, 0, len(r.keys))
	for _, k := range r.keys {
		values = append(values, c.e.keyJSON(c.s, r, k))
	}
	return c.page(values)
}

func apiAddKey(c *apiCall) reply {
	r, rep := c.adminRepo()
	if rep != nil {
		return *rep
	}
	var in struct {
		Key   string `json:"key"`
		Label string `json:"label"`
	}
	if err := json.Unmarshal(c.body, &in); err != nil {
		return fail(http.StatusBadRequest, "Malformed JSON in the request body")
	}
	if strings.TrimSpace(in.Key) == "" {
		return fieldError("key", "This field is required.")
	}
	k, err := c.e.addKey(r, in.Key, in.Label)
	if err != nil {
		return fieldError("key", err.Error())
	}
	return ok(c.e.keyJSON(c.s, r, k))
}

func (c *apiCall) lookupKey() (*repo, *deployKey, *reply) {
	r, rep := c.adminRepo()
	if rep != nil {
		return nil, nil, rep
	}
	id, err := strconv.Atoi(c.p["key"])
	if err == nil {
		for _, k := range r.keys {
			if k.ID == id {
				return r, k, nil
			}
		}
	}
	nf := fail(http.StatusNotFound, msgNoKey)
	return nil, nil, &nf
}

func apiGetKey(c *apiCall) reply {
	r, k, rep := c.lookupKey()
	if rep != nil {
		return *rep
	}
	return ok(c.e.keyJSON(c.s, r, k))
}

// apiUpdateKey changes a key's label (and comment), as Bitbucket's PUT does;
// the key material itself cannot change.
func apiUpdateKey(c *apiCall) reply {
	r, k, rep := c.lookupKey()
	if rep != nil {
		return *rep
	}
	var in struct {
		Label   *string `json:"label"`
		Comment *string `json:"comment"`
	}
	if err := json.Unmarshal(c.body, &in); err != nil {
		return fail(http.StatusBadRequest, "Malformed JSON in the request body")
	}
	if in.Label != nil {
		k.Label = *in.Label
	}
	if in.Comment != nil {
		k.Comment = *in.Comment
	}
	return ok(c.e.keyJSON(c.s, r, k))
}

func apiDeleteKey(c *apiCall) reply {
	r, k, rep := c.lookupKey()
	if rep != nil {
		return *rep
	}
	r.keys = slices.DeleteFunc(r.keys, func(x *deployKey) bool { return x == k })
	return reply{status: http.StatusNoContent}
}
