package emulator

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The control page (/_emulator/) shows the emulated world and changes it.
// It is an emulator feature, not a Bitbucket page: every form posts to
// /_emulator/<action> and redirects back with a one-line message. Element ids
// and field names are stable so browser tests can drive it.

type controlData struct {
	Message    string
	Bad        bool
	Users      []User
	Workspaces []workspaceRow
	Repos      []repoRow
	Consumers  []Consumer
	Grants     []grantRow
	Failures   []failureRow
	Usernames  []string
	Slugs      []string
	RepoNames  []string
	Scopes     []string
	Deliveries []DeliveryLog
	SSHAddr    string
	Calls      []CallCount
	RateLimit  RateLimit
	Pulls      []pullRow
	// RefreshRefusals and SSHRefusals are the refusals the page offers.
	RefreshRefusals []string
	SSHRefusals     []string
}

type pullRow struct {
	Repo string
	PullRequest
}

type workspaceRow struct {
	Workspace
	Members []memberRow
}

type memberRow struct {
	Username string
	Admin    bool
}

type repoRow struct {
	Repository
	Access []accessRow
	Keys   []DeployKey
	Hooks  []Hook
}

type accessRow struct{ Username, Perm, Via string }

type grantRow struct {
	Username, ConsumerKey, ConsumerName string
	Scopes                              []string
	LiveTokens, ExpiredTokens           int
	Refreshes                           int
}

type failureRow struct {
	Failure
	Left string
}

func (e *Emulator) serveControl(w http.ResponseWriter, r *http.Request, s site) {
	action := strings.Trim(strings.TrimPrefix(r.URL.Path, "/_emulator"), "/")
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		act, found := controlActions[action]
		if !found {
			e.renderError(w, s, http.StatusNotFound, "Unknown control", action)
			return
		}
		msg, err := act(e, r.PostForm)
		v := url.Values{"msg": {msg}}
		if err != nil {
			v = url.Values{"msg": {err.Error()}, "bad": {"1"}}
		}
		http.Redirect(w, r, s.path+"/_emulator/?"+v.Encode(), http.StatusSeeOther)
		return
	}
	if action != "" {
		e.renderError(w, s, http.StatusNotFound, "Page not found", "")
		return
	}
	data := e.controlData()
	data.Calls = e.APICalls()
	data.Message = r.URL.Query().Get("msg")
	data.Bad = r.URL.Query().Get("bad") != ""
	e.render(w, http.StatusOK, "control", page{Title: "Bitbucket emulator — controls", Base: s.path, User: e.signedIn(r), Data: data})
}

func (e *Emulator) controlData() controlData {
	e.mu.Lock()
	defer e.mu.Unlock()
	var d controlData
	scopes := map[string]bool{}
	for _, u := range e.users {
		d.Users = append(d.Users, u.User)
		d.Usernames = append(d.Usernames, u.Username)
	}
	for _, w := range e.workspaces {
		row := workspaceRow{Workspace: w.Workspace}
		for name, admin := range w.members {
			row.Members = append(row.Members, memberRow{name, admin})
		}
		slices.SortFunc(row.Members, func(a, b memberRow) int { return strings.Compare(a.Username, b.Username) })
		d.Workspaces = append(d.Workspaces, row)
		d.Slugs = append(d.Slugs, w.Slug)
	}
	for _, r := range e.repos {
		row := repoRow{Repository: r.public()}
		for _, u := range e.users {
			explicit, isExplicit := r.perms[u.Username]
			p := e.permission(u.Username, r)
			var via string
			switch {
			case isExplicit && explicit == "":
				via = "removed from the repository"
			case isExplicit:
				via = "repository permission"
			case p == permAdmin:
				via = "workspace admin"
			case p == permRead:
				via = "workspace member"
			default:
				continue
			}
			row.Access = append(row.Access, accessRow{u.Username, permName(p), via})
		}
		for _, k := range r.keys {
			row.Keys = append(row.Keys, k.DeployKey)
		}
		for _, h := range r.hooks {
			row.Hooks = append(row.Hooks, *h)
		}
		d.Repos = append(d.Repos, row)
		d.RepoNames = append(d.RepoNames, r.fullName())
		for _, pr := range r.pulls {
			d.Pulls = append(d.Pulls, pullRow{r.fullName(), pr.public()})
		}
	}
	for _, c := range e.consumers {
		d.Consumers = append(d.Consumers, Consumer{Key: c.Key, Name: c.Name, CallbackURL: c.CallbackURL, Scopes: c.Scopes})
		for _, sc := range c.Scopes {
			scopes[sc] = true
		}
	}
	now := time.Now()
	for _, g := range e.grants {
		row := grantRow{Username: g.username, ConsumerKey: g.consumer, ConsumerName: g.consumer,
			Scopes: g.scopes, Refreshes: e.refreshes[g.username]}
		if c := e.consumer(g.consumer); c != nil {
			row.ConsumerName = c.Name
		}
		for _, t := range e.access {
			if t.g != g {
				continue
			}
			if now.After(t.expires) {
				row.ExpiredTokens++
			} else {
				row.LiveTokens++
			}
		}
		d.Grants = append(d.Grants, row)
	}
	for _, f := range e.failures {
		left := "until cleared"
		if f.Times > 0 {
			left = strconv.Itoa(f.left)
		}
		d.Failures = append(d.Failures, failureRow{f.Failure, left})
	}
	for sc := range scopes {
		d.Scopes = append(d.Scopes, sc)
	}
	slices.Sort(d.Scopes)
	d.Deliveries = e.deliveries
	d.RateLimit = e.rateLimit
	for name := range RefreshRefusals {
		d.RefreshRefusals = append(d.RefreshRefusals, name)
	}
	slices.Sort(d.RefreshRefusals)
	for _, msg := range SSHRefusals {
		d.SSHRefusals = append(d.SSHRefusals, msg)
	}
	slices.Sort(d.SSHRefusals)
	if e.ssh.ln != nil {
		d.SSHAddr = e.ssh.ln.Addr().String()
	}
	return d
}

type controlAction func(e *Emulator, f url.Values) (string, error)

var controlActions = map[string]controlAction{
	"add-user": func(e *Emulator, f url.Values) (string, error) {
		name := strings.TrimSpace(f.Get("username"))
		if name == "" {
			return "", errors.New("a username is required")
		}
		display := f.Get("display_name")
		if display == "" {
			display = name
		}
		e.AddUser(User{Username: name, DisplayName: display, Email: f.Get("email"), Password: f.Get("password")})
		return "Added user " + name, nil
	},
	"add-workspace": func(e *Emulator, f url.Values) (string, error) {
		slug := strings.TrimSpace(f.Get("slug"))
		if !validSlug(slug) {
			return "", fmt.Errorf("invalid workspace slug %q", slug)
		}
		name := f.Get("name")
		if name == "" {
			name = slug
		}
		e.AddWorkspace(slug, name)
		return "Added workspace " + slug, nil
	},
	"add-member": func(e *Emulator, f url.Values) (string, error) {
		ws, name := f.Get("workspace"), f.Get("username")
		if ws == "" || name == "" {
			return "", errors.New("choose a workspace and a user")
		}
		e.AddWorkspaceMember(ws, name, f.Get("admin") != "")
		return name + " is now a member of " + ws, nil
	},
	"add-repo": func(e *Emulator, f url.Values) (string, error) {
		ws, slug := f.Get("workspace"), strings.TrimSpace(f.Get("slug"))
		if ws == "" || !validSlug(slug) {
			return "", fmt.Errorf("invalid repository %s/%s", ws, slug)
		}
		rp := e.AddRepository(ws, slug, f.Get("private") != "")
		return "Added repository " + rp.FullName, nil
	},
	"set-permission": func(e *Emulator, f url.Values) (string, error) {
		e.mu.Lock()
		defer e.mu.Unlock()
		name, full, perm := f.Get("username"), f.Get("repo"), f.Get("perm")
		if err := e.setRepoPermission(name, full, perm); err != nil {
			return "", err
		}
		if perm == "" {
			return name + " no longer has access to " + full, nil
		}
		return name + " now has " + perm + " on " + full, nil
	},
	"revoke": func(e *Emulator, f url.Values) (string, error) {
		e.RevokeAuthorization(f.Get("username"), f.Get("consumer"))
		return "Revoked " + f.Get("consumer") + " for " + f.Get("username"), nil
	},
	"drop-scope": func(e *Emulator, f url.Values) (string, error) {
		e.DropScope(f.Get("username"), f.Get("consumer"), f.Get("scope"))
		return "Dropped " + f.Get("scope") + " from " + f.Get("username") + "'s grant of " + f.Get("consumer"), nil
	},
	"expire-tokens": func(e *Emulator, f url.Values) (string, error) {
		e.ExpireTokens(f.Get("username"))
		return "Expired the access tokens of " + f.Get("username"), nil
	},
	"add-failure": func(e *Emulator, f url.Values) (string, error) {
		var fl Failure
		fl.PathPrefix = strings.TrimSpace(f.Get("path_prefix"))
		switch fl.Method = f.Get("method"); fl.Method {
		case "", http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete:
		default:
			return "", fmt.Errorf("invalid method %q", fl.Method)
		}
		fl.Commit = f.Get("commit") != ""
		var err error
		if fl.Status, err = formInt(f, "status"); err != nil {
			return "", err
		}
		if fl.RetryAfter, err = formInt(f, "retry_after"); err != nil {
			return "", err
		}
		if fl.Times, err = formInt(f, "times"); err != nil {
			return "", err
		}
		if v := f.Get("stall_seconds"); v != "" {
			secs, err := strconv.ParseFloat(v, 64)
			if err != nil || secs < 0 {
				return "", fmt.Errorf("invalid stall %q", v)
			}
			fl.Stall = time.Duration(secs * float64(time.Second))
		}
		if fl.Status == 0 && fl.Stall == 0 {
			return "", errors.New("a failure needs a status or a stall")
		}
		if fl.Status != 0 && (fl.Status < 400 || fl.Status > 599) {
			return "", fmt.Errorf("status %d is not an error status", fl.Status)
		}
		fl.Method = strings.ToUpper(strings.TrimSpace(f.Get("method")))
		fl.Message = strings.TrimSpace(f.Get("message"))
		if field := strings.TrimSpace(f.Get("field")); field != "" {
			fl.Fields = map[string][]string{field: {cmp.Or(strings.TrimSpace(f.Get("field_message")), "This field is invalid.")}}
		}
		if scope := strings.TrimSpace(f.Get("required")); scope != "" {
			fl.Detail = map[string][]string{"required": {scope}, "granted": {}}
		}
		e.FailAPI(fl)
		return "Added a failure", nil
	},
	"open-pr": func(e *Emulator, f url.Values) (string, error) {
		res, err := e.OpenPullRequest(f.Get("repo"), f.Get("source"), strings.TrimSpace(f.Get("source_branch")),
			strings.TrimSpace(f.Get("dest_branch")), f.Get("title"), f.Get("author"))
		if err != nil {
			return "", err
		}
		return describeEvent(fmt.Sprintf("Opened pull request #%d on %s", res.ID, f.Get("repo")), res.Deliveries), nil
	},
	"pr-action": func(e *Emulator, f url.Values) (string, error) {
		repo, actor, text := f.Get("repo"), f.Get("actor"), f.Get("text")
		id, err := strconv.Atoi(f.Get("id"))
		if err != nil {
			return "", fmt.Errorf("invalid pull request number %q", f.Get("id"))
		}
		var res EventResult
		switch action := f.Get("action"); action {
		case "edit":
			res, err = e.EditPullRequest(repo, id, cmp.Or(text, "A new title"), "", actor)
		case "comment":
			res, err = e.CommentPullRequest(repo, id, cmp.Or(text, "Looks good"), actor)
		case "merge":
			res, err = e.MergePullRequest(repo, id, actor)
		case "decline":
			res, err = e.DeclinePullRequest(repo, id, actor)
		default:
			res, err = e.ReviewPullRequest(repo, id, action, actor)
		}
		if err != nil {
			return "", err
		}
		return describeEvent(fmt.Sprintf("%s #%d: %s", repo, id, f.Get("action")), res.Deliveries), nil
	},
	"fork": func(e *Emulator, f url.Values) (string, error) {
		res, err := e.ForkRepository(f.Get("repo"), strings.TrimSpace(f.Get("workspace")), strings.TrimSpace(f.Get("slug")), f.Get("actor"))
		if err != nil {
			return "", err
		}
		return describeEvent("Forked "+f.Get("repo"), res.Deliveries), nil
	},
	"describe-repo": func(e *Emulator, f url.Values) (string, error) {
		res, err := e.DescribeRepository(f.Get("repo"), f.Get("description"), f.Get("actor"))
		if err != nil {
			return "", err
		}
		return describeEvent("Changed the settings of "+f.Get("repo"), res.Deliveries), nil
	},
	"commit-status": func(e *Emulator, f url.Values) (string, error) {
		res, err := e.SetCommitStatus(f.Get("repo"), strings.TrimSpace(f.Get("branch")), strings.TrimSpace(f.Get("key")), f.Get("state"), f.Get("actor"))
		if err != nil {
			return "", err
		}
		return describeEvent("Reported a build status on "+f.Get("repo"), res.Deliveries), nil
	},
	"refuse-refresh": func(e *Emulator, f url.Values) (string, error) {
		if err := e.RefuseRefresh(f.Get("username"), f.Get("refusal")); err != nil {
			return "", err
		}
		if f.Get("refusal") == "" {
			return "The token endpoint refreshes " + f.Get("username") + "'s tokens again", nil
		}
		return "The token endpoint answers " + f.Get("username") + "'s refreshes with " + f.Get("refusal"), nil
	},
	"consumer-secret": func(e *Emulator, f url.Values) (string, error) {
		key, secret := f.Get("consumer"), strings.TrimSpace(f.Get("secret"))
		if f.Get("restore") != "" {
			secret = e.originalSecret(key)
		} else if secret == "" {
			secret = randomToken(16)
		}
		if err := e.SetConsumerSecret(key, secret); err != nil {
			return "", err
		}
		if f.Get("restore") != "" {
			return "Restored the original secret of " + key, nil
		}
		return "Changed the secret of " + key + ": a client using the old one is now refused", nil
	},
	"refuse-ssh": func(e *Emulator, f url.Values) (string, error) {
		if err := e.RefuseSSH(f.Get("repo"), f.Get("reason")); err != nil {
			return "", err
		}
		if f.Get("reason") == "" {
			return "Git over SSH serves " + f.Get("repo") + " again", nil
		}
		return "Git over SSH refuses " + f.Get("repo") + ": " + f.Get("reason"), nil
	},
	"refuse-workspace": func(e *Emulator, f url.Values) (string, error) {
		status, err := formInt(f, "status")
		if err != nil {
			return "", err
		}
		if status != 0 && (status < 400 || status > 599) {
			return "", fmt.Errorf("status %d is not an error status", status)
		}
		if err := e.RefuseWorkspace(f.Get("workspace"), status, strings.TrimSpace(f.Get("message"))); err != nil {
			return "", err
		}
		if status == 0 {
			return "The API serves the workspace " + f.Get("workspace") + " again", nil
		}
		return fmt.Sprintf("Every API call on the workspace %s answers %d", f.Get("workspace"), status), nil
	},
	"set-rate-limit": func(e *Emulator, f url.Values) (string, error) {
		n, err := formInt(f, "per_hour")
		if err != nil {
			return "", err
		}
		e.SetRateLimit(RateLimit{PerHour: n, Headers: f.Get("headers") != ""})
		if n == 0 {
			return "The API has no rate limit now", nil
		}
		return fmt.Sprintf("The API allows %d calls per user per hour", n), nil
	},
	"reset-calls": func(e *Emulator, f url.Values) (string, error) {
		e.ResetAPICalls()
		return "API call counts reset", nil
	},
	"clear-failures": func(e *Emulator, f url.Values) (string, error) {
		e.ClearFailures()
		return "Cleared all failures", nil
	},
	"add-key": func(e *Emulator, f url.Values) (string, error) {
		k, err := e.AddDeployKey(f.Get("repo"), f.Get("key"), f.Get("label"))
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("Added deploy key %d to %s", k.ID, f.Get("repo")), nil
	},
	"delete-key": func(e *Emulator, f url.Values) (string, error) {
		id, err := strconv.Atoi(f.Get("id"))
		if err != nil {
			return "", fmt.Errorf("invalid key id %q", f.Get("id"))
		}
		e.DeleteDeployKey(f.Get("repo"), id)
		return fmt.Sprintf("Deleted deploy key %d from %s", id, f.Get("repo")), nil
	},
	"replace-key": func(e *Emulator, f url.Values) (string, error) {
		id, err := strconv.Atoi(f.Get("id"))
		if err != nil {
			return "", fmt.Errorf("invalid key id %q", f.Get("id"))
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if err := e.replaceKeyMaterial(f.Get("repo"), id, f.Get("key")); err != nil {
			return "", err
		}
		return fmt.Sprintf("Replaced the material of deploy key %d on %s", id, f.Get("repo")), nil
	},
	"delete-hook": func(e *Emulator, f url.Values) (string, error) {
		e.DeleteHook(f.Get("repo"), f.Get("uuid"))
		return "Deleted webhook " + f.Get("uuid") + " from " + f.Get("repo"), nil
	},
	"set-hook-active": func(e *Emulator, f url.Values) (string, error) {
		active := f.Get("active") != ""
		e.SetHookActive(f.Get("repo"), f.Get("uuid"), active)
		if active {
			return "Activated webhook " + f.Get("uuid"), nil
		}
		return "Deactivated webhook " + f.Get("uuid"), nil
	},
	"edit-hook": func(e *Emulator, f url.Values) (string, error) {
		var events []string
		if v := strings.TrimSpace(f.Get("events")); v != "" {
			events = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
		}
		if msg := checkHookURL(f.Get("url")); f.Get("url") != "" && msg != "" {
			return "", errors.New("url: " + msg)
		}
		if msg := checkHookEvents(events); events != nil && msg != "" {
			return "", errors.New("events: " + msg)
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if err := e.editHook(f.Get("repo"), f.Get("uuid"), f.Get("url"), events, f.Get("clear_secret") != ""); err != nil {
			return "", err
		}
		return "Edited webhook " + f.Get("uuid"), nil
	},
	"push": func(e *Emulator, f url.Values) (string, error) {
		repo, ref, author := f.Get("repo"), strings.TrimSpace(f.Get("ref")), f.Get("author")
		var res PushResult
		var err error
		switch f.Get("kind") {
		case "tag":
			res, err = e.PushTag(repo, ref, author)
		case "delete-branch":
			res, err = e.DeleteBranch(repo, ref, author)
		case "delete-tag":
			res, err = e.DeleteTag(repo, ref, author)
		default:
			res, err = e.Push(repo, ref, cmp.Or(f.Get("message"), "Update from the emulator"), author)
		}
		if err != nil {
			return "", err
		}
		return describePush(repo, res), nil
	},
	"rename-repo": func(e *Emulator, f url.Values) (string, error) {
		e.mu.Lock()
		defer e.mu.Unlock()
		if err := e.renameRepo(f.Get("repo"), strings.TrimSpace(f.Get("new_slug"))); err != nil {
			return "", err
		}
		return "Renamed " + f.Get("repo"), nil
	},
	"move-repo": func(e *Emulator, f url.Values) (string, error) {
		e.mu.Lock()
		defer e.mu.Unlock()
		if err := e.moveRepo(f.Get("repo"), strings.TrimSpace(f.Get("workspace"))); err != nil {
			return "", err
		}
		return "Moved " + f.Get("repo") + " to " + f.Get("workspace"), nil
	},
	"rename-workspace": func(e *Emulator, f url.Values) (string, error) {
		e.mu.Lock()
		defer e.mu.Unlock()
		if err := e.renameWorkspace(f.Get("workspace"), strings.TrimSpace(f.Get("new_slug"))); err != nil {
			return "", err
		}
		return "Renamed workspace " + f.Get("workspace") + " to " + f.Get("new_slug"), nil
	},
}

// describeEvent says what an action delivered, for the control page.
func describeEvent(what string, ds []Delivery) string {
	if len(ds) == 0 {
		return what + "; no active webhook subscribes to the event"
	}
	var parts []string
	for _, d := range ds {
		outcome := fmt.Sprintf("HTTP %d", d.Status)
		if d.Status == 0 {
			outcome = d.Error
		}
		parts = append(parts, fmt.Sprintf("%s %s", d.URL, outcome))
	}
	return what + "; delivered to " + strings.Join(parts, ", ")
}

func describePush(repo string, res PushResult) string {
	short := func(h string) string {
		if len(h) > 7 {
			return h[:7]
		}
		return cmp.Or(h, "none")
	}
	msg := fmt.Sprintf("%s %s: %s → %s", repo, res.Ref, short(res.Old), short(res.New))
	if len(res.Deliveries) == 0 {
		return msg + "; no active repo:push webhooks"
	}
	var parts []string
	for _, d := range res.Deliveries {
		outcome := fmt.Sprintf("HTTP %d", d.Status)
		if d.Status == 0 {
			outcome = d.Error
		}
		attempts := "1 attempt"
		if d.Attempts != 1 {
			attempts = fmt.Sprintf("%d attempts", d.Attempts)
		}
		parts = append(parts, fmt.Sprintf("%s %s after %s", d.URL, outcome, attempts))
	}
	return msg + "; delivered to " + strings.Join(parts, ", ")
}

func formInt(f url.Values, name string) (int, error) {
	v := strings.TrimSpace(f.Get(name))
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid %s %q", strings.ReplaceAll(name, "_", " "), v)
	}
	return n, nil
}

// validSlug accepts what Bitbucket allows in workspace and repository slugs.
func validSlug(s string) bool {
	if s == "" || len(s) > 62 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
