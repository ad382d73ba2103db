package emulator

import (
	"bytes"
	"embed"
	"fmt"
	"hash/fnv"
	"html/template"
	"log"
	"net/http"
	"strings"
)

//go:embed templates/*.html
var templateFS embed.FS

// pages holds one template set per page, each the layout plus the page's
// "content" block.
var pages = func() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, name := range []string{"signin", "consent", "error", "appauth", "home", "repo", "control"} {
		out[name] = template.Must(template.New("layout.html").ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	return out
}()

// page is what every template gets.
type page struct {
	Title string
	Base  string // path the emulator is mounted at, prefix of every link and form action
	User  string // signed-in username, "" when signed out
	CSRF  string
	Data  any
}

func (e *Emulator) render(w http.ResponseWriter, status int, name string, p page) {
	var buf bytes.Buffer
	if err := pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		// Templates are fixed at build time, so this is a programming error
		// worth seeing in the test or demo output.
		log.Printf("emulator: rendering %s: %v", name, err)
		http.Error(w, "template error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w) // the client hanging up is not ours to report
}

type errorData struct{ Heading, Detail string }

func (e *Emulator) renderError(w http.ResponseWriter, s site, status int, heading, detail string) {
	e.render(w, status, "error", page{Title: heading, Base: s.path, Data: errorData{heading, detail}})
}

func (e *Emulator) signedIn(r *http.Request) string {
	if sess := e.session(r); sess != nil {
		return sess.username
	}
	return ""
}

func (e *Emulator) handleHome(w http.ResponseWriter, r *http.Request, s site) {
	e.render(w, http.StatusOK, "home", page{Title: "Bitbucket emulator", Base: s.path, User: e.signedIn(r)})
}

type repoPageData struct {
	FullName, UUID, HTTPS, SSH, MainBranch string
	Private                                bool
}

// handleRepoPage serves a repository's web page (the links.html of the API
// objects), so links from Tether to "the repository on Bitbucket" land
// somewhere in the demo. Private repositories need a signed-in reader.
func (e *Emulator) handleRepoPage(w http.ResponseWriter, r *http.Request, s site) {
	username := e.signedIn(r)
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	e.mu.Lock()
	var data *repoPageData
	if len(parts) == 2 {
		if rp := e.repoByFullName(parts[0] + "/" + strings.TrimSuffix(parts[1], ".git")); rp != nil && e.canRead(username, rp) {
			data = &repoPageData{FullName: rp.fullName(), UUID: rp.uuid, Private: rp.private, MainBranch: rp.mainbranch,
				HTTPS: e.httpsClone(s, rp, username), SSH: e.sshClone(s, rp)}
		}
	}
	e.mu.Unlock()
	if data == nil {
		e.renderError(w, s, http.StatusNotFound, "Repository not found",
			"Either this repository does not exist or you do not have access to it.")
		return
	}
	e.render(w, http.StatusOK, "repo", page{Title: data.FullName, Base: s.path, User: username, Data: data})
}

func isAvatarPath(p string) bool {
	return strings.HasPrefix(p, "/account/") && strings.Contains(p, "/avatar/")
}

// serveAvatar draws an initial on a colour derived from the name, so avatar
// links in API objects render as images in the demo.
func serveAvatar(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/account/")
	name = strings.TrimPrefix(name, "user/")
	name, _, _ = strings.Cut(name, "/")
	initial := "?"
	if name != "" {
		initial = strings.ToUpper(name[:1])
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(name)) // hash writes never fail
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32" viewBox="0 0 32 32">`+
		`<rect width="32" height="32" rx="4" fill="hsl(%d,55%%,45%%)"/>`+
		`<text x="16" y="21.5" font-family="sans-serif" font-size="16" text-anchor="middle" fill="#fff">%s</text></svg>`,
		h.Sum32()%360, template.HTMLEscapeString(initial))
}
