package bitbucket

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// A redirect answered to a write is an error naming the move, and the
// client never sends the GET Go would follow it with; a GET still follows.
func TestWritesFollowNoRedirect(t *testing.T) {
	t.Parallel()
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIazEu89wgQZ4bqs3d63QSMzYVa0MuJ2e2gKTKqu+UUO"
	in := HookInput{Description: "Tether", URL: "https://ci.example.com/hooks/bitbucket/1", Active: true, Events: []string{"repo:push"}, Secret: "s3cret-hook"}
	writes := []struct {
		name, method string
		do           func(c *Client) error
	}{
		{"create deploy key", http.MethodPost, func(c *Client) error {
			_, err := c.CreateDeployKey(context.Background(), testToken, "acme", "api", key, "Tether")
			return err
		}},
		{"create hook", http.MethodPost, func(c *Client) error {
			_, err := c.CreateHook(context.Background(), testToken, "acme", "api", in)
			return err
		}},
		{"update hook", http.MethodPut, func(c *Client) error {
			_, err := c.UpdateHook(context.Background(), testToken, "acme", "api", "{abc}", in)
			return err
		}},
		{"delete deploy key", http.MethodDelete, func(c *Client) error {
			return c.DeleteDeployKey(context.Background(), testToken, "acme", "api", 7)
		}},
		{"delete hook", http.MethodDelete, func(c *Client) error {
			return c.DeleteHook(context.Background(), testToken, "acme", "api", "{abc}")
		}},
	}
	for _, status := range []int{301, 302, 303, 307, 308} {
		for _, w := range writes {
			t.Run(w.name+" "+strconv.Itoa(status), func(t *testing.T) {
				t.Parallel()
				var followed atomic.Int32
				c, srv := newTestClient(t, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
					if strings.Contains(r.URL.Path, "/api-v2/") {
						followed.Add(1)
						writeJSON(rw, 200, `{"pagelen":10,"values":[],"page":1,"size":0}`)
						return
					}
					if r.Method != w.method {
						t.Errorf("%s %s, want %s", r.Method, r.URL.Path, w.method)
					}
					rw.Header().Set("Location", "http://"+r.Host+strings.Replace(r.URL.Path, "/api/", "/api-v2/", 1))
					rw.WriteHeader(status)
				}))
				err := w.do(c)
				var moved *MovedError
				if !errors.As(err, &moved) || !IsMoved(err) || moved.Status != status || moved.Method != w.method {
					t.Fatalf("err = %v, want a MovedError for %d", err, status)
				}
				if !strings.HasPrefix(moved.Location, "/repositories/acme/api-v2/") || strings.Contains(moved.Location, srv.URL) {
					t.Errorf("Location = %q, want the API path it points at", moved.Location)
				}
				if !strings.Contains(err.Error(), "moved or renamed") || IsTransient(err) {
					t.Errorf("error %q: does not name the move, or looks transient", err)
				}
				if n := followed.Load(); n != 0 {
					t.Errorf("the redirect was followed %d times", n)
				}
				assertNoSecrets(t, err, in.Secret)
			})
		}
	}
	t.Run("GET follows", func(t *testing.T) {
		t.Parallel()
		c, _ := newTestClient(t, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/2.0/repositories/acme/api" {
				http.Redirect(rw, r, "/2.0/repositories/acme/api-v2", http.StatusMovedPermanently)
				return
			}
			writeJSON(rw, 200, `{"uuid":"{r}","full_name":"acme/api-v2","slug":"api-v2"}`)
		}))
		repo, err := c.Repository(context.Background(), testToken, "acme", "api")
		if err != nil || repo.FullName != "acme/api-v2" {
			t.Fatalf("GET after a redirect: %+v %v", repo, err)
		}
	})
}

// A create answered 2xx without the id or uuid of what it created is an
// error, not a key with id 0 or a hook without a uuid.
func TestCreateAnswerMustNameWhatItCreated(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, answer, missing string
		create                func(c *Client) error
	}{
		{"deploy key without id", `{"key":"ssh-ed25519 AAAA","label":"Tether"}`, "id", func(c *Client) error {
			_, err := c.CreateDeployKey(context.Background(), testToken, "acme", "api", "ssh-ed25519 AAAA", "Tether")
			return err
		}},
		{"deploy key with id 0", `{"id":0}`, "id", func(c *Client) error {
			_, err := c.CreateDeployKey(context.Background(), testToken, "acme", "api", "ssh-ed25519 AAAA", "Tether")
			return err
		}},
		{"a page instead of a key", `{"pagelen":10,"values":[],"page":1}`, "id", func(c *Client) error {
			_, err := c.CreateDeployKey(context.Background(), testToken, "acme", "api", "ssh-ed25519 AAAA", "Tether")
			return err
		}},
		{"hook without uuid", `{"url":"https://ci.example.com/h","active":true}`, "uuid", func(c *Client) error {
			_, err := c.CreateHook(context.Background(), testToken, "acme", "api", HookInput{URL: "https://ci.example.com/h"})
			return err
		}},
		{"hook with empty braces", `{"uuid":"{}"}`, "uuid", func(c *Client) error {
			_, err := c.CreateHook(context.Background(), testToken, "acme", "api", HookInput{URL: "https://ci.example.com/h"})
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, _ := newTestClient(t, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				writeJSON(rw, 201, tc.answer)
			}))
			err := tc.create(c)
			var inc *IncompleteError
			if !errors.As(err, &inc) || inc.Missing != tc.missing {
				t.Fatalf("err = %v, want an IncompleteError missing %s", err, tc.missing)
			}
		})
	}
}
