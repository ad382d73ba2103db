package config

import (
	"io"
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	env := map[string]string{
		"TETHER_ADDR":         "0.0.0.0:9000",
		"BITBUCKET_URL":       "http://127.0.0.1:1234/",
		"BITBUCKET_CLIENT_ID": "id", "BITBUCKET_CLIENT_SECRET": "secret",
	}
	c, err := Load([]string{"-addr", "127.0.0.1:7000"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case c.Addr != "127.0.0.1:7000":
		t.Errorf("a flag must win over its variable: %q", c.Addr)
	case c.BitbucketURL != "http://127.0.0.1:1234":
		t.Errorf("trailing slash kept: %q", c.BitbucketURL)
	case c.BitbucketAPIURL != "https://api.bitbucket.org/2.0" || c.BitbucketSSHAddr != "bitbucket.org:22" || c.DataDir != "./data":
		t.Errorf("defaults: %+v", c)
	case c.Demo() || c.SecureCookies():
		t.Errorf("demo %v, secure %v", c.Demo(), c.SecureCookies())
	}
	demo, err := Load(nil, func(string) string { return "" }, io.Discard)
	if err != nil || !demo.Demo() || demo.Addr != "localhost:8080" || demo.PublicURL != "http://localhost:8080" {
		t.Fatalf("no configuration: %+v %v", demo, err)
	}
}

func TestLoadRefusesBadSettings(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		says string
	}{
		{map[string]string{"TETHER_PUBLIC_URL": "localhost:8080"}, "TETHER_PUBLIC_URL"},
		{map[string]string{"BITBUCKET_API_URL": "ftp://x"}, "BITBUCKET_API_URL"},
		{map[string]string{"BITBUCKET_CLIENT_ID": "id"}, "BITBUCKET_CLIENT_SECRET"},
		{map[string]string{"TETHER_SECRET_KEY": "short"}, "TETHER_SECRET_KEY"},
	} {
		_, err := Load(nil, func(k string) string { return tc.env[k] }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%v: %v", tc.env, err)
		}
	}
}
