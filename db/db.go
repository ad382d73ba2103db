// Package db is Tether's store: one SQLite file (modernc.org/sqlite, no cgo)
// opened as two pools — a single writer that runs every write and
// transaction, and a pool of readers — with its pragmas in the DSN so every
// pooled connection gets them. Numbered migrations are embedded and applied
// at Open. All SQL lives in this package, as typed Store methods.
package db

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"tether/internal/secrets"
	"tether/internal/tether"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store reads through a pool of connections and writes through one.
type Store struct {
	write  *writer
	read   *sql.DB
	box    *secrets.Box
	now    func() time.Time
	hot    hotReads
	ingest ingestStmts
	ckpt   *checkpointer

	// stmts caches the readers' prepared statements by query text: badge
	// polls and webhook deliveries run the same few reads all the time,
	// and parsing them again each time was most of their cost.
	stmts sync.Map // string → *sql.Stmt
}

// Open opens (creating if needed) the database file at path and migrates it.
// box seals every secret column. A missing folder is created 0700; the
// database file and SQLite's -wal and -shm beside it are 0600 whatever
// the folder's mode or the umask (SQLite gives -wal and -shm the
// database file's mode).
func Open(ctx context.Context, path string, box *secrets.Box) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("db: data dir: %w", err)
	}
	if err := private(path); err != nil {
		return nil, err
	}
	v := newVersions()
	write := openWriter(dsn(path, roleWriter), v)
	// One writer: SQLite allows one at a time anyway, and queueing here
	// instead of in busy_timeout keeps writes fair and "database is locked"
	// out of the picture.
	write.db.SetMaxOpenConns(1)
	write.db.SetConnMaxIdleTime(0)
	read, err := sql.Open("sqlite", dsn(path, roleReader))
	if err != nil {
		write.db.Close()
		return nil, fmt.Errorf("db: open readers: %w", err)
	}
	readers := max(4, runtime.NumCPU()*2)
	read.SetMaxOpenConns(readers)
	// Keep every reader open: database/sql keeps two idle by default, and
	// a reader opened anew reads the schema, runs the pragmas and prepares
	// its statements again — under load that churn cost more than the
	// queries themselves.
	read.SetMaxIdleConns(readers)
	s := &Store{write: write, read: read, box: box, now: func() time.Time { return time.Now().UTC() }, hot: newHotReads(v)}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.prepareIngest(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if s.ckpt, err = startCheckpointer(dsn(path, roleCheckpointer), &write.commits); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// private creates the database file 0600 if it is missing, and makes it
// and its -wal and -shm files 0600 if others may read them.
func private(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("db: create %s: %w", path, err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		st, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err == nil && st.Mode().Perm()&0o077 != 0 {
			err = os.Chmod(p, 0o600)
		}
		if err != nil {
			return fmt.Errorf("db: make %s private: %w", p, err)
		}
	}
	return nil
}

// role is what a connection is for: each gets its own pragmas.
type role int

const (
	roleReader       role = iota // the readers: query_only
	roleWriter                   // the one writer
	roleCheckpointer             // background checkpoints (checkpoint.go)
)

func dsn(path string, r role) string {
	q := url.Values{}
	// busy_timeout first: the pragmas after it may need to wait for a lock.
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	// FULL: a commit is on disk before it returns, so a webhook delivery
	// acknowledged with a 2xx survives a power loss, not only a crash.
	// Deliveries share commits (group commit), which keeps this cheap.
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Set("_time_format", "sqlite")
	switch r {
	case roleWriter:
		// BEGIN IMMEDIATE takes the write lock up front, so a transaction
		// never fails half-way when it upgrades from read to write.
		q.Set("_txlock", "immediate")
		// The writer walks the indexes that take random keys (request
		// UUIDs, body digests, commits) on every delivery: 32 MiB of page
		// cache keeps their pages in memory instead of reading them back
		// from the file. The checkpointer (checkpoint.go) copies the log
		// into the file beside the writer; the writer's own checkpoint,
		// at 16,000 pages (64 MiB of log), is the backstop that lets the
		// log start over, with little left to copy by then.
		// BenchmarkSQLiteCommitBatched measures what each changed.
		q.Add("_pragma", "cache_size(-32768)")
		q.Add("_pragma", "wal_autocheckpoint(16000)")
	case roleReader:
		q.Add("_pragma", "query_only(ON)")
	}
	return "file:" + filepath.ToSlash(path) + "?" + q.Encode()
}

// Close closes both pools.
func (s *Store) Close() error {
	s.stmts.Range(func(_, v any) bool {
		v.(*sql.Stmt).Close()
		return true
	})
	for _, st := range []*sql.Stmt{s.ingest.delivery, s.ingest.claim, s.ingest.unstore, s.ingest.workflow} {
		if st != nil {
			st.Close()
		}
	}
	var ckptErr error
	if s.ckpt != nil {
		ckptErr = s.ckpt.close()
	}
	return errors.Join(ckptErr, s.read.Close(), s.write.db.Close())
}

// prepared returns the cached reader statement for query.
func (s *Store) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := s.stmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.read.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// readRow runs a one-row query on the readers with a prepared statement.
func (s *Store) readRow(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := s.prepared(ctx, query)
	if err != nil {
		// Let the plain query report the error through Row.Scan.
		return s.read.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// readRows runs a query on the readers with a prepared statement.
func (s *Store) readRows(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := s.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// rowScanner is the Scan method *sql.Row and *sql.Rows share: what a scan
// function (scanProject, scanIncident, …) reads one row through. It is an
// alias, so a scan function written with the interface literal fits too.
type rowScanner = interface{ Scan(...any) error }

// collect scans every row of a query with scan, in the query's order, and
// closes rows. It takes the query's two results as they come, so one loop
// serves the readers (readRows), the writer and a *sql.Tx:
//
//	rows, err := tx.QueryContext(ctx, query, args...)
//	return collect(rows, err, scanThing)
//
// It returns nil, not an empty slice, when there is no row; nil and the
// error when the query or a scan fails; and the rows read so far with
// rows.Err() when the iteration stops early.
func collect[T any](rows *sql.Rows, err error, scan func(rowScanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// queryAll runs a query on the readers and scans every row with scan (see
// collect).
func queryAll[T any](ctx context.Context, s *Store, scan func(rowScanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := s.readRows(ctx, query, args...)
	return collect(rows, err, scan)
}

// scanID scans a row of one integer column (an id).
func scanID(row rowScanner) (int64, error) {
	var id int64
	err := row.Scan(&id)
	return id, err
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.read.PingContext(ctx) }

// tx runs fn in a write transaction, committing when fn returns nil.
func (s *Store) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.write.tx(ctx, fn)
}

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.write.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, applied_at TIMESTAMP NOT NULL)`); err != nil {
		return fmt.Errorf("db: migrations table: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		base := filepath.Base(name)
		version, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("db: migration %s: name must start with its number", base)
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		err = s.tx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return fmt.Errorf("db: migration %s: %w", base, err)
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, version, s.now())
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// nullTime turns the zero time into NULL.
func nullTime(t time.Time) sql.NullTime {
	return sql.NullTime{Time: t, Valid: !t.IsZero()}
}

// notFound maps sql.ErrNoRows to ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return tether.ErrNotFound
	}
	return err
}
