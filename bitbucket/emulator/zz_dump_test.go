package emulator

import (
	"fmt"
	"net/http"
	"testing"
)

func TestZZDump(t *testing.T) {
	v := newEnv(t)
	tok := v.login("alice")
	for _, p := range []string{"/user", "/user/workspaces", "/repositories/alice/dotfiles", "/repositories/acme?pagelen=1&page=2&role=member"} {
		_, body := v.get(tok.AccessToken, p)
		fmt.Println(p, body)
	}
	resp, _ := http.Get(v.srv.URL + "/_emulator/")
	fmt.Println(readBody(t, resp))
}
