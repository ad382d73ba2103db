package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	_ "modernc.org/sqlite"
)

// fragment serves one file's bytes to every request with plain net/http:
// what answering the badge poll costs with nothing in between.
func fragment(args []string) error {
	fs := flag.NewFlagSet("fragment", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "where to listen")
	file := fs.String("file", "", "the bytes to serve")
	fs.Parse(args)
	body, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	return http.ListenAndServe(*addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		w.Write(body)
	}))
}

// commits inserts one row per transaction into a fresh SQLite file with
// Tether's pragmas (WAL, synchronous=FULL: every commit waits for its
// fsync) for a while, and reports commits per second and how long each
// took.
func commits(args []string) error {
	fs := flag.NewFlagSet("commits", flag.ExitOnError)
	dir := fs.String("dir", "", "folder for the database file")
	duration := fs.Duration("duration", 10*time.Second, "how long to commit")
	fs.Parse(args)
	if *dir == "" {
		return errors.New("-dir is required")
	}
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(ON)", "temp_store(MEMORY)"} {
		q.Add("_pragma", p)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(*dir, "bare.db")+"?"+q.Encode())
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TABLE deliveries (id INTEGER PRIMARY KEY, request_uuid TEXT NOT NULL,
		hook_uuid TEXT NOT NULL, event_key TEXT NOT NULL, size INTEGER NOT NULL, received_at TIMESTAMP NOT NULL)`); err != nil {
		return err
	}
	var took []time.Duration
	start := time.Now()
	for i := 0; time.Since(start) < *duration; i++ {
		t := time.Now()
		if _, err := db.ExecContext(ctx, `INSERT INTO deliveries (request_uuid, hook_uuid, event_key, size, received_at)
			VALUES (?, '0f6a5b7e-3c1d-4e2f-9a8b-7c6d5e4f3a2b', 'repo:push', 10416, ?)`, "bare-"+strconv.Itoa(i), t.UTC()); err != nil {
			return err
		}
		took = append(took, time.Since(t))
	}
	result("bare-commits", len(took), time.Since(start), took, fmt.Sprintf("one-row-commits=%d", len(took)))
	return nil
}
