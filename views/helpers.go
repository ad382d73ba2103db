package views

import (
	"encoding/json"
	"net/http"
	"strconv"
)

func csrfHeader(token string) string {
	b, _ := json.Marshal(map[string]string{"X-CSRF-Token": token})
	return string(b)
}

func statusTitle(status int) string {
	switch status {
	case http.StatusNotFound:
		return "Not found"
	case http.StatusForbidden:
		return "Not allowed"
	case http.StatusUnauthorized:
		return "Please log in"
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return "Bitbucket could not be reached"
	}
	if status >= 500 {
		return "Something went wrong"
	}
	return "That did not work"
}

func valueUnlessPassword(f Form, name, typ string) string {
	if typ == "password" {
		return ""
	}
	return f.Value(name)
}

func stepNumber(i int) string { return strconv.Itoa(i+1) + "." }
