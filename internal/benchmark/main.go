// Command benchmark is the Go half of scripts/bench.sh, which measures
// Tether's two hot paths from outside beside bare anchors in one run (see
// docs/BENCHMARKS.md). Each subcommand does one part:
//
//	benchmark port                 print a free loopback port
//	benchmark setup -url U -out D  sign in to a running demo Tether as alice,
//	                               create a project from acme/api, and write
//	                               the badge poll's URL, cookies and one
//	                               fragment's bytes into folder D
//	benchmark fragment -addr A -file F
//	                               serve F's bytes to every request: the bare
//	                               net/http anchor of the badge poll
//	benchmark commits -dir D -duration T
//	                               bare single-row SQLite commits at Tether's
//	                               pragmas: the anchor of durable ingest
//	benchmark deliveries -url U -data-dir D -secret-key K -senders N -duration T
//	                               N senders of signed repo:push deliveries to
//	                               the project's hook, each with a fresh
//	                               X-Request-UUID and body
//	benchmark calls -url U -user NAME
//	                               the API calls the demo's Bitbucket counted
//	                               for NAME
//
// Measuring subcommands end with one line "result NAME RATE P50_MS P99_MS
// [NOTE]" that the script collects.
package main

import (
	"fmt"
	"math"
	"os"
	"slices"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchmark port|setup|fragment|commits|deliveries|calls [flags]")
		os.Exit(2)
	}
	cmds := map[string]func([]string) error{
		"port": port, "setup": setup, "fragment": fragment,
		"commits": commits, "deliveries": deliveries, "calls": calls,
	}
	cmd, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "benchmark: no subcommand %q\n", os.Args[1])
		os.Exit(2)
	}
	if err := cmd(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "benchmark %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// result prints the line scripts/bench.sh reads: rate per second and the
// 50th and 99th percentile of took, in milliseconds.
func result(name string, n int, elapsed time.Duration, took []time.Duration, note string) {
	slices.Sort(took)
	fmt.Printf("result %s %.0f %.2f %.2f %s\n", name, float64(n)/elapsed.Seconds(),
		ms(percentile(took, 50)), ms(percentile(took, 99)), note)
}

// percentile is the nearest-rank percentile p (0 < p <= 100) of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
