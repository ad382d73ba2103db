package db

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Checkpoints run beside the writer, not in its commits. SQLite copies
// the write-ahead log back into the database file when a commit leaves
// the log past wal_autocheckpoint pages, inside that commit: the
// deliveries sharing it waited for thousands of page writes and an fsync
// of the database file, and those commits made ingest's slowest answers
// (every 18th commit at SQLite's default). The checkpointer instead runs
// a PASSIVE checkpoint on a connection of its own every
// checkpointInterval while there were commits: it copies what no reader
// still needs while the writer goes on committing. The writer's own
// autocheckpoint (16,000 pages, dsn) stays as the backstop that lets the
// log start over from its beginning; by then the checkpointer has copied
// nearly everything, so it has little left to do. In the store's
// benchmark (11 deliveries a commit) the slowest 1 % of commits took
// 15 ms with the checkpoints in them and 4 ms beside them.
const checkpointInterval = 200 * time.Millisecond

// checkpointer runs the background checkpoints of one database file.
type checkpointer struct {
	db      *sql.DB
	commits *atomic.Uint64 // the writer's commits so far
	stop    chan struct{}
	done    chan struct{}
	closed  sync.Once
	err     error // closing the connection's
}

// startCheckpointer opens the checkpointer's connection on dsn and starts
// it; stopped by close.
func startCheckpointer(dsn string, commits *atomic.Uint64) (*checkpointer, error) {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("db: open checkpointer: %w", err)
	}
	db.SetMaxOpenConns(1)
	c := &checkpointer{db: db, commits: commits, stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c, nil
}

func (c *checkpointer) run() {
	defer close(c.done)
	t := time.NewTicker(checkpointInterval)
	defer t.Stop()
	var seen uint64
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		if n := c.commits.Load(); n != seen {
			seen = n
			// A failure (the file busy past busy_timeout) leaves the log
			// to the next tick or to the writer's backstop.
			c.db.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)")
		}
	}
}

// close stops the checkpoints and closes the connection; closing again
// (a Store closed twice) does nothing more.
func (c *checkpointer) close() error {
	c.closed.Do(func() {
		close(c.stop)
		<-c.done
		c.err = c.db.Close()
	})
	return c.err
}
