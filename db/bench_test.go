package db

// Raw commit rate of the store: the same file, pools and pragmas as Tether
// (Open), the measured writes through the store's own methods. They run
// only with -bench; docs/BENCHMARKS.md has the figures.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"tether/internal/secrets"
	"tether/internal/tether"
)

func openBenchStore(b *testing.B) *Store {
	b.Helper()
	box, err := secrets.NewBox("benchmark-secret-key-at-least-32-characters")
	if err != nil {
		b.Fatal(err)
	}
	s, err := Open(context.Background(), filepath.Join(b.TempDir(), "tether.db"), box)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkSQLiteCommit is a bare insert loop, one row per transaction:
// a single autocommit INSERT of a delivery row on the writer connection.
func BenchmarkSQLiteCommit(b *testing.B) {
	ctx := context.Background()
	s := openBenchStore(b)
	projectID := benchProject(b, s)
	b.ResetTimer()
	for i := range b.N {
		_, err := s.write.ExecContext(ctx, `INSERT INTO deliveries
			(project_id, request_uuid, hook_uuid, event_key, attempt, status, reason, size, received_at)
			VALUES (?, ?, '0f6a5b7e-3c1d-4e2f-9a8b-7c6d5e4f3a2b', 'repo:push', 1, 'accepted', 'benchmark', 10416, ?)`,
			projectID, "bench-"+strconv.Itoa(i), s.now())
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
}

// BenchmarkSQLiteCommitBatched stores accepted deliveries, each with one
// workflow as a push starts, through AcceptDeliveries (what the webhook
// receiver's group commit calls), batch deliveries per transaction. One op
// is one delivery; batch=1 is a commit per delivery, batch=11 what 32
// concurrent senders share. Request UUIDs, bodies and commits are as
// random as Bitbucket's, so every index takes its keys where it would.
// Besides time it reports CPU and the read and write syscalls (pread and
// pwrite of pages and WAL frames) per delivery, and how long the slowest
// 1 % of commits and the slowest one took.
func BenchmarkSQLiteCommitBatched(b *testing.B) {
	for _, size := range []int{1, 11, 64} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			ctx := context.Background()
			s := openBenchStore(b)
			projectID := benchProject(b, s)
			batch := make([]tether.Accept, 0, size)
			commits := 0
			var took []time.Duration // each commit's
			b.ResetTimer()
			cpu := cpuTime()
			r0, w0 := ioSyscalls()
			for i := 0; i < b.N; i += size {
				batch = batch[:0]
				for j := i; j < min(i+size, b.N); j++ {
					body := sha256.Sum256([]byte(strconv.Itoa(j)))
					id := hex.EncodeToString(body[:])
					batch = append(batch, tether.Accept{
						BodySHA256: body[:],
						Delivery: tether.Delivery{ProjectID: projectID, RequestUUID: id[:8] + "-" + id[8:12] + "-4" + id[13:16] + "-8" + id[17:20] + "-" + id[20:32],
							HookUUID: "0f6a5b7e-3c1d-4e2f-9a8b-7c6d5e4f3a2b", EventKey: "repo:push", Attempt: 1, Size: 10416},
						Workflows: []tether.Workflow{{Trigger: "push", RefType: "branch", RefName: "master",
							CommitHash: id[24:64], Message: "Update README.md",
							Author: "Brad Rydzewski", CommittedAt: time.Date(2015, 6, 9, 3, 34, 49, 0, time.UTC)}},
					})
				}
				start := time.Now()
				results, err := s.AcceptDeliveries(ctx, batch)
				took = append(took, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
				for _, r := range results {
					if r.Err != nil || r.Duplicate || r.Started != 1 {
						b.Fatalf("result %+v", r)
					}
				}
				commits++
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
			b.ReportMetric(float64(commits)/b.Elapsed().Seconds(), "commits/s")
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-commit-ms")
			b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "max-commit-ms")
			b.ReportMetric(float64(cpuTime()-cpu)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
			r1, w1 := ioSyscalls()
			b.ReportMetric(float64(r1-r0)/float64(b.N), "syscr/op")
			b.ReportMetric(float64(w1-w0)/float64(b.N), "syscw/op")
		})
	}
}

// benchProject stores a user and a project for deliveries to belong to
// (deliveries.project_id is a foreign key). Plain INSERTs of the columns
// migration 0002 requires, so the fixture does not follow every change to
// CreateProject's signature; later migrations only add columns.
func benchProject(b *testing.B, s *Store) int64 {
	b.Helper()
	ctx := context.Background()
	now := s.now()
	res, err := s.write.ExecContext(ctx, `INSERT INTO users (name, created_at) VALUES ('Bench', ?)`, now)
	if err != nil {
		b.Fatal(err)
	}
	userID, _ := res.LastInsertId()
	res, err = s.write.ExecContext(ctx, `INSERT INTO projects
		(name, owner_id, repo_uuid, workspace, repo_slug, full_name, clone_ssh, created_at, updated_at)
		VALUES ('api', ?, '{bc771cbf-829e-4c4b-b71f-a0eb3ac2b860}', 'bench', 'api', 'bench/api',
		'git@bitbucket.org:bench/api.git', ?, ?)`, userID, now, now)
	if err != nil {
		b.Fatal(err)
	}
	id, _ := res.LastInsertId()
	return id
}

// cpuTime is the CPU the process has used (user and system): what a
// delivery costs the store, apart from the disk's fsync and other load.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ioSyscalls counts the read and write system calls the process has made
// (syscr and syscw in /proc/self/io; zero where there is none): unlike
// time and CPU on a shared machine, how many a delivery costs is the same
// from run to run.
func ioSyscalls() (r, w int64) {
	data, _ := os.ReadFile("/proc/self/io")
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "syscr:" {
			r, _ = strconv.ParseInt(f[1], 10, 64)
		}
		if len(f) == 2 && f[0] == "syscw:" {
			w, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	return
}
