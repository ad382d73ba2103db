package emulator

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// newKey returns a fresh Ed25519 signer and its authorized_keys line.
func newKey(t *testing.T, comment string) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
	return signer, line + " " + comment
}

func jsonBody(t *testing.T, v any) *strings.Reader {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return strings.NewReader(string(b))
}

type keyJSONT struct {
	ID         int     `json:"id"`
	Key        string  `json:"key"`
	Label      string  `json:"label"`
	Type       string  `json:"type"`
	Comment    string  `json:"comment"`
	CreatedOn  string  `json:"created_on"`
	LastUsed   *string `json:"last_used"`
	Repository struct {
		FullName string `json:"full_name"`
		UUID     string `json:"uuid"`
	} `json:"repository"`
	Links struct {
		Self struct{ Href string } `json:"self"`
	} `json:"links"`
}

func TestDeployKeyCRUD(t *testing.T) {
	v := newEnv(t)
	alice, bob := v.login("alice").AccessToken, v.login("bob").AccessToken
	_, line := newKey(t, "tether@ci")

	resp, body := v.api(http.MethodPost, alice, "/repositories/acme/api/deploy-keys", jsonBody(t, map[string]string{"key": line, "label": "Tether"}))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("add key: %d %s", resp.StatusCode, body)
	}
	var k keyJSONT
	if err := json.Unmarshal([]byte(body), &k); err != nil {
		t.Fatal(err)
	}
	if k.ID == 0 || k.Type != "deploy_key" || k.Label != "Tether" || k.Comment != "tether@ci" || k.LastUsed != nil ||
		k.Key != strings.TrimSuffix(line, " tether@ci") || k.Repository.FullName != "acme/api" || k.CreatedOn == "" ||
		k.Links.Self.Href != v.srv.URL+"/2.0/repositories/acme/api/deploy-keys/"+strconv.Itoa(k.ID) {
		t.Errorf("created key %+v", k)
	}
	if !strings.Contains(body, `"last_used":null`) {
		t.Errorf("last_used is not null: %s", body)
	}

	var list struct {
		Size   int        `json:"size"`
		Values []keyJSONT `json:"values"`
	}
	v.getJSON(alice, "/repositories/acme/api/deploy-keys", http.StatusOK, &list)
	if list.Size != 1 || list.Values[0].ID != k.ID {
		t.Errorf("list %+v", list)
	}
	// The repository may be named by uuid.
	var byUUID keyJSONT
	v.getJSON(alice, "/repositories/acme/"+url.PathEscape(k.Repository.UUID)+"/deploy-keys/"+strconv.Itoa(k.ID), http.StatusOK, &byUUID)
	if byUUID.ID != k.ID {
		t.Errorf("key by repo uuid %+v", byUUID)
	}
	if got := v.e.DeployKeys("acme/api"); len(got) != 1 || got[0].ID != k.ID || got[0].Label != "Tether" {
		t.Errorf("DeployKeys %+v", got)
	}

	// The same key twice on one repository is refused in Bitbucket's words;
	// on another repository it is fine.
	resp, body = v.api(http.MethodPost, alice, "/repositories/acme/api/deploy-keys", jsonBody(t, map[string]string{"key": line, "label": "again"}))
	var e errorJSON
	_ = json.Unmarshal([]byte(body), &e)
	if resp.StatusCode != http.StatusBadRequest || e.Error.Message != msgDuplicateKey {
		t.Errorf("duplicate: %d %s", resp.StatusCode, body)
	}
	if resp, body := v.api(http.MethodPost, alice, "/repositories/acme/web/deploy-keys", jsonBody(t, map[string]string{"key": line})); resp.StatusCode != http.StatusOK {
		t.Errorf("same key on another repository: %d %s", resp.StatusCode, body)
	}
	for _, bad := range []string{"ssh-ed25519 nope", "hello", `command="ls" ` + line} {
		resp, body = v.api(http.MethodPost, alice, "/repositories/acme/api/deploy-keys", jsonBody(t, map[string]string{"key": bad}))
		_ = json.Unmarshal([]byte(body), &e)
		if resp.StatusCode != http.StatusBadRequest || e.Error.Message != msgBadKey {
			t.Errorf("malformed key %q: %d %s", bad, resp.StatusCode, body)
		}
	}

	// Non-admins: 403 on a repository they can read, 404 on one they cannot.
	v.wantError(bob, "/repositories/acme/api/deploy-keys", http.StatusForbidden, msgNotAdmin)
	resp, _ = v.api(http.MethodPost, bob, "/repositories/acme/api/deploy-keys", jsonBody(t, map[string]string{"key": line}))
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("bob adding a key: %d", resp.StatusCode)
	}
	v.wantError(bob, "/repositories/acme/infra/deploy-keys", http.StatusNotFound, "Repository acme/infra not found")

	resp, body = v.api(http.MethodDelete, alice, "/repositories/acme/api/deploy-keys/"+strconv.Itoa(k.ID), nil)
	if resp.StatusCode != http.StatusNoContent || body != "" {
		t.Errorf("delete: %d %q", resp.StatusCode, body)
	}
	v.wantError(alice, "/repositories/acme/api/deploy-keys/"+strconv.Itoa(k.ID), http.StatusNotFound, msgNoKey)
	if got := v.e.DeployKeys("acme/api"); len(got) != 0 {
		t.Errorf("after delete %+v", got)
	}

	// Without repository:admin the scope check answers first.
	v.e.DropScope("alice", testKey, "repository:admin")
	v.wantError(alice, "/repositories/acme/api/deploy-keys", http.StatusForbidden, msgScopes)
}

func TestDeployKeyGoAPI(t *testing.T) {
	v := newEnv(t)
	_, line := newKey(t, "a@b")
	k, err := v.e.AddDeployKey("acme/api", line, "L")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.e.AddDeployKey("acme/api", line, "L"); err == nil || err.Error() != msgDuplicateKey {
		t.Errorf("duplicate via Go: %v", err)
	}
	_, other := newKey(t, "c@d")
	v.e.ReplaceDeployKeyMaterial("acme/api", k.ID, other)
	got := v.e.DeployKeys("acme/api")
	if len(got) != 1 || got[0].ID != k.ID || got[0].Key == k.Key || got[0].Comment != "c@d" {
		t.Errorf("after replace %+v", got)
	}
	v.e.DeleteDeployKey("acme/api", k.ID)
	if got := v.e.DeployKeys("acme/api"); len(got) != 0 {
		t.Errorf("after delete %+v", got)
	}
}
