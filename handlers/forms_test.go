package handlers

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

const fuzzToken = "fuzz-csrf-token-0123456789abcdef"

// formServer is Echo with Tether's body limit and CSRF check in front of
// a handler that decodes a form with formOf, as the sign-up handler does.
func formServer(t testing.TB) *echo.Echo {
	h := &Handlers{cfg: Config{}}
	e := echo.New()
	e.Use(limitBody(formBodyLimit, nil))
	e.POST("/form", func(c echo.Context) error {
		f := formOf(c, "name", "email", "next")
		for k, v := range f.Values {
			if len(v) > formBodyLimit {
				t.Errorf("field %s decoded to %d bytes, over the %d-byte body limit", k, len(v), formBodyLimit)
			}
		}
		return c.String(http.StatusOK, f.Value("email"))
	}, h.csrf())
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		status, msg := statusOf(err)
		c.String(status, msg)
	}
	return e
}

// post sends body as the form (multipart when boundary is set), the CSRF
// cookie, the token in the header when header is set, and always the
// token in the query string, which must not count.
func post(e *echo.Echo, body []byte, boundary, header string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/form?_csrf="+fuzzToken, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if boundary != "" {
		req.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
	}
	if header != "" {
		req.Header.Set("X-CSRF-Token", header)
	}
	req.AddCookie(&http.Cookie{Name: csrfCookie, Value: fuzzToken})
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

func multipartForm(fields map[string]string) ([]byte, string) {
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for k, v := range fields {
		w.WriteField(k, v)
	}
	w.Close()
	return b.Bytes(), w.Boundary()
}

func TestFormDecoding(t *testing.T) {
	e := formServer(t)
	good := url.Values{"_csrf": {fuzzToken}, "email": {"pat@example.com"}}.Encode()
	multi, boundary := multipartForm(map[string]string{"_csrf": fuzzToken, "email": "pat@example.com"})
	bigMulti, bigBoundary := multipartForm(map[string]string{"_csrf": fuzzToken, "email": strings.Repeat("a", 4<<20)})
	for _, tc := range []struct {
		name             string
		body             []byte
		boundary, header string
		status           int
	}{
		{"token in the form", []byte(good), "", "", http.StatusOK},
		{"token in a multipart form", multi, boundary, "", http.StatusOK},
		{"token in the header", []byte("email=pat%40example.com"), "", fuzzToken, http.StatusOK},
		{"token only in the query", []byte("email=pat%40example.com"), "", "", http.StatusForbidden},
		{"wrong token", []byte("_csrf=nope"), "", "", http.StatusForbidden},
		{"4 MB multipart", bigMulti, bigBoundary, "", http.StatusRequestEntityTooLarge},
		{"form over the limit", []byte(good + "&name=" + strings.Repeat("a", formBodyLimit)), "", "", http.StatusRequestEntityTooLarge},
	} {
		rec := post(e, tc.body, tc.boundary, tc.header)
		if rec.Code != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, rec.Code, rec.Body, tc.status)
		}
	}
}

// FuzzFormDecoding: whatever body a client posts, urlencoded or multipart,
// the CSRF check and the form decoder answer 200, 403 or 413 and never
// panic; a 200 means the token came in the header or the form body, never
// from the query string alone.
func FuzzFormDecoding(f *testing.F) {
	multi, boundary := multipartForm(map[string]string{"_csrf": fuzzToken, "email": "pat@example.com", "next": "/projects"})
	f.Add(multi, boundary, "")
	f.Add([]byte("_csrf="+fuzzToken+"&email=pat%40example.com&name=Pat"), "", "")
	f.Add([]byte("email=%zz&_csrf="+fuzzToken+"&_csrf=other"), "", "")
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"_csrf\"\r\n\r\n"+fuzzToken+"\r\n--b--"), "b", "")
	f.Add([]byte("x"), "", fuzzToken)
	e := formServer(f)
	f.Fuzz(func(t *testing.T, body []byte, boundary, header string) {
		if strings.ContainsAny(boundary, "\r\n;\"") || strings.ContainsAny(header, "\r\n") {
			return // not expressible as a header
		}
		rec := post(e, body, boundary, header)
		switch rec.Code {
		case http.StatusOK, http.StatusForbidden, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if rec.Code == http.StatusOK && header != fuzzToken && !bytes.Contains(body, []byte(fuzzToken)) {
			t.Fatalf("accepted without the token in the header or the body: %q", body)
		}
	})
}
