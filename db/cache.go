package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"

	"tether/internal/tether"
)

// Hot reads are cached. Every signed-in request reads its session, the
// person's organizations and, on a project's routes, the project and the
// person's role in it; a badge poll adds the recorded health and the key
// in force, a webhook delivery the project and hook of its URL. They
// change seldom and are read thousands of times a second, so the store
// keeps what it read and reads again only after a write changed a table
// the rows come from.
//
// What changed is known exactly: every write goes through the one writer
// connection, whose SQLite pre-update hook names each table a statement
// changes — triggers, foreign-key cascades and upserts included, so a
// write path added later needs no invalidation of its own. When the
// write's transaction has ended (committed or rolled back), the versions of
// those tables move on. A cached read remembers the versions it was read
// at (taken before the query) and is used only while they still hold: a
// change is seen by the first read that starts after the write returned.
// Reading again costs one query; nothing stale is ever served.
//
// The store is the only writer of its file (one Tether per data folder);
// a change made to the file by another process is not seen until Tether's
// own writes touch the same tables.

// cachedTables are the tables cached reads come from; changes to others
// (deliveries, workflows, digests, alerts…) move no version.
var cachedTables = []string{
	"sessions", "users", "password_credentials", "bitbucket_identities",
	"organizations", "memberships",
	"projects", "health", "deploy_keys", "webhooks",
}

// maxCached bounds each cache: when full it starts again empty. Only rows
// that exist are cached, so made-up session tokens or hook URLs never
// fill it.
const maxCached = 10_000

// versions counts the changes to each cached table.
type versions map[string]*atomic.Uint64

func newVersions() versions {
	v := versions{}
	for _, t := range cachedTables {
		v[t] = new(atomic.Uint64)
	}
	return v
}

// of returns the counters of tables (each must be one of cachedTables).
func (v versions) of(tables ...string) []*atomic.Uint64 {
	out := make([]*atomic.Uint64, len(tables))
	for i, t := range tables {
		if out[i] = v[t]; out[i] == nil {
			panic("db: " + t + " is not a cached table")
		}
	}
	return out
}

// writer is the connection every write goes through, one at a time. Its
// pre-update hook notes the cached tables a write changes; when the write
// has ended, their versions move on.
type writer struct {
	db       *sql.DB
	versions versions
	mu       sync.Mutex    // held for the whole of each write
	commits  atomic.Uint64 // writes ended, for the checkpointer
	changed  []*atomic.Uint64
}

func openWriter(dsn string, v versions) *writer {
	w := &writer{versions: v}
	w.db = sql.OpenDB(hookedConnector{dsn: dsn, onChange: w.noteChange})
	return w
}

// noteChange is the pre-update hook: a statement of the write in progress
// is about to change a row of table.
func (w *writer) noteChange(table string) {
	if v := w.versions[table]; v != nil {
		w.changed = append(w.changed, v)
	}
}

// begin starts a write; end moves the versions of what it changed on and
// lets the next write start.
func (w *writer) begin() { w.mu.Lock() }

func (w *writer) end() {
	w.commits.Add(1)
	for _, v := range w.changed {
		v.Add(1)
	}
	w.changed = w.changed[:0]
	w.mu.Unlock()
}

// ExecContext runs one write statement (its own transaction).
func (w *writer) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	w.begin()
	defer w.end()
	return w.db.ExecContext(ctx, query, args...)
}

// QueryRowContext and QueryContext read on the writer connection (what a
// write just stored, before it reaches every reader); they must not write.
func (w *writer) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return w.db.QueryRowContext(ctx, query, args...)
}

func (w *writer) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return w.db.QueryContext(ctx, query, args...)
}

// tx runs fn in a write transaction, committing when fn returns nil.
func (w *writer) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	w.begin()
	defer w.end()
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("db: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("db: commit: %w", err)
	}
	return nil
}

// hookedConnector opens the writer's connections with the pre-update hook
// registered, so a connection database/sql opens anew has it too.
type hookedConnector struct {
	dsn      string
	onChange func(table string)
}

func (c hookedConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.Driver().Open(c.dsn)
	if err != nil {
		return nil, err
	}
	hooks, ok := conn.(sqlite.HookRegisterer)
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("db: the sqlite driver offers no pre-update hook")
	}
	hooks.RegisterPreUpdateHook(func(d sqlite.SQLitePreUpdateData) { c.onChange(d.TableName) })
	return conn, nil
}

func (hookedConnector) Driver() driver.Driver { return &sqlite.Driver{} }

// cache keeps rows read from some tables by key, while none of those
// tables has changed since.
type cache[K comparable, V any] struct {
	deps []*atomic.Uint64
	mu   sync.RWMutex
	m    map[K]cached[V]
}

type cached[V any] struct {
	version uint64
	value   V
}

func newCache[K comparable, V any](deps []*atomic.Uint64) *cache[K, V] {
	return &cache[K, V]{deps: deps, m: map[K]cached[V]{}}
}

// version sums the tables' counters: they only grow, so the sum changes
// whenever one of them does.
func (c *cache[K, V]) version() uint64 {
	var sum uint64
	for _, d := range c.deps {
		sum += d.Load()
	}
	return sum
}

// get returns the value cached under k if its tables have not changed
// since it was read, and otherwise what read returns, caching it unless
// read failed (not found included).
func (c *cache[K, V]) get(k K, read func() (V, error)) (V, error) {
	v := c.version()
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if ok && e.version == v {
		return e.value, nil
	}
	value, err := read()
	if err != nil {
		return value, err
	}
	c.mu.Lock()
	if len(c.m) >= maxCached {
		clear(c.m)
	}
	if prev, ok := c.m[k]; !ok || prev.version < v {
		c.m[k] = cached[V]{v, value}
	}
	c.mu.Unlock()
	return value, nil
}

// hotReads are the store's cached reads.
type hotReads struct {
	sessions    *cache[string, sessionRow] // by token hash
	memberships *cache[int64, []tether.Membership]
	currentOrg  *cache[int64, int64]
	roles       *cache[[2]int64, string] // by org, user
	projects    *cache[int64, tether.Project]
	hookTokens  *cache[string, tether.Project]
	health      *cache[healthKey, tether.Health]
	keys        *cache[int64, tether.DeployKey] // the public half of the key in force
	hooks       *cache[hookKey, tether.Webhook]
}

// sessionRow is a session's user and when the session expires.
type sessionRow struct {
	user    tether.User
	expires time.Time
}

type healthKey struct {
	projectID int64
	part      string
}

type hookKey struct {
	projectID int64
	uuid      string
}

func newHotReads(v versions) hotReads {
	user := []string{"users", "password_credentials", "bitbucket_identities"}
	return hotReads{
		sessions:    newCache[string, sessionRow](v.of(append([]string{"sessions"}, user...)...)),
		memberships: newCache[int64, []tether.Membership](v.of("memberships", "organizations")),
		currentOrg:  newCache[int64, int64](v.of("users")),
		roles:       newCache[[2]int64, string](v.of("memberships")),
		projects:    newCache[int64, tether.Project](v.of("projects", "users")),
		hookTokens:  newCache[string, tether.Project](v.of("projects", "users")),
		health:      newCache[healthKey, tether.Health](v.of("health")),
		keys:        newCache[int64, tether.DeployKey](v.of("deploy_keys")),
		hooks:       newCache[hookKey, tether.Webhook](v.of("webhooks")),
	}
}
