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
	if err != nil || !demo.Demo() || demo.Addr != "localhost:8080" || demo.PublicURL != "http://localhost:8080" ||
		demo.RetentionDays != 30 || demo.RetentionPerProject != 1000 || demo.TrustedProxies != "" {
		t.Fatalf("no configuration: %+v %v", demo, err)
	}
	kept, err := Load([]string{"-retention-days", "3"}, func(k string) string {
		return map[string]string{"TETHER_RETENTION_DAYS": "9", "TETHER_RETENTION_PER_PROJECT": "50",
			"TETHER_TRUSTED_PROXIES": "10.0.0.1, 192.168.0.0/16,::1"}[k]
	}, io.Discard)
	proxies, perr := kept.Proxies()
	if err != nil || perr != nil || kept.RetentionDays != 3 || kept.RetentionPerProject != 50 || len(proxies) != 3 ||
		proxies[0].String() != "10.0.0.1/32" || proxies[1].String() != "192.168.0.0/16" || proxies[2].String() != "::1/128" {
		t.Fatalf("retention and proxies: %+v %v %v %v", kept, proxies, err, perr)
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
		{map[string]string{"TETHER_RETENTION_DAYS": "a week"}, "TETHER_RETENTION_DAYS must be a whole number"},
		{map[string]string{"TETHER_RETENTION_DAYS": "0"}, "TETHER_RETENTION_DAYS must be at least 1"},
		{map[string]string{"TETHER_RETENTION_PER_PROJECT": "-5"}, "TETHER_RETENTION_PER_PROJECT"},
		{map[string]string{"TETHER_TRUSTED_PROXIES": "proxy.example"}, "TETHER_TRUSTED_PROXIES"},
	} {
		_, err := Load(nil, func(k string) string { return tc.env[k] }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%v: %v", tc.env, err)
		}
	}
}
