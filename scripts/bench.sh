#!/usr/bin/env bash
# Measures Tether's two hot paths from outside, each beside its bare anchor,
# in one run on this machine (docs/BENCHMARKS.md has the figures):
#
#   - the deploy-key badge as htmx polls it (GET with the session cookie and
#     HX-Request), loaded by wrk with BENCH_CONNECTIONS connections, beside a
#     bare net/http server answering the same fragment's bytes;
#   - signed webhook deliveries from BENCH_SENDERS concurrent senders (a
#     fresh X-Request-UUID and body each), beside bare single-row SQLite
#     commits at Tether's pragmas (WAL, synchronous=FULL).
#
# Tether is the built binary in demo mode (no BITBUCKET_CLIENT_ID: the
# Bitbucket emulator is mounted at /bitbucket), configured only through its
# environment variables, with a fresh data folder. `internal/benchmark`
# signs in as alice, creates a project from acme/api, runs the anchors and
# sends the deliveries. BENCH_SECONDS (default 10) is each measurement's
# length; BENCH_ROUNDS (default 1) repeats the four measurements.
# TETHER_BIN measures another build of Tether (e.g. an older commit's, for
# a before/after) with this tree's harness and anchors.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${BENCH_SECONDS:-10}
rounds=${BENCH_ROUNDS:-1}
connections=${BENCH_CONNECTIONS:-100}
senders=${BENCH_SENDERS:-32}

. scripts/debian.sh
need_deb wrk

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== build"
if [ -n "${TETHER_BIN:-}" ]; then
  cp "$TETHER_BIN" "$work/tether"
else
  go build -o "$work/tether" .
fi
go build -o "$work/benchmark" ./internal/benchmark
bench="$work/benchmark"

echo "== machine"
if git rev-parse --git-dir >/dev/null 2>&1; then
  echo "commit:  $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo ' (with uncommitted changes)')"
else
  echo "commit:  not a git checkout ($(pwd))"
fi
echo "cpus:    $(nproc) × $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)"
dd_out=$(dd if=/dev/zero of="$work/dd" bs=4k count=1000 oflag=dsync 2>&1 | tail -1)
dd_secs=$(echo "$dd_out" | awk -F, '{ print $(NF-1) }' | awk '{ print $1 }')
echo "fsync:   dd bs=4k count=1000 oflag=dsync: $(awk -v s="$dd_secs" 'BEGIN { printf "%.0f µs a synced write (%.0f/s)", s * 1000, 1000 / s }')"
rm -f "$work/dd"

echo "== start Tether (demo mode) and the bare fragment server"
port=$("$bench" port)
base="http://127.0.0.1:$port"
key="bench-secret-key-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
env -u BITBUCKET_CLIENT_ID -u BITBUCKET_CLIENT_SECRET \
  TETHER_ADDR="127.0.0.1:$port" TETHER_PUBLIC_URL="$base" \
  TETHER_DATA_DIR="$work/data" TETHER_SECRET_KEY="$key" \
  "$work/tether" >"$work/tether.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
"$bench" setup -url "$base" -out "$work"
badge_url=$(cat "$work/badge_url")
cookie=$(cat "$work/cookie")
bare_port=$("$bench" port)
"$bench" fragment -addr "127.0.0.1:$bare_port" -file "$work/fragment.html" &
pids+=($!)
bare_url="http://127.0.0.1:$bare_port/projects/1/deploy-key"
for _ in $(seq 100); do
  curl -fsS "$bare_url" >/dev/null 2>&1 && break
  sleep 0.1
done
echo "fragment: $(wc -c <"$work/fragment.html") bytes"

# wrk_result NAME URL [HEADER...]: load URL with wrk and print
# "result NAME REQ/S P50_MS P99_MS".
wrk_result() {
  local name=$1 url=$2
  shift 2
  local args=(-t2 -c"$connections" -d"${seconds}s" --latency)
  for h in "$@"; do args+=(-H "$h"); done
  local out
  out=$(wrk "${args[@]}" "$url")
  if grep -q -e 'Non-2xx' -e 'Socket errors' <<<"$out"; then
    echo "$name: wrk saw failures:" >&2
    echo "$out" >&2
    exit 1
  fi
  awk -v name="$name" '
    function ms(v) {
      if (v ~ /us$/) return v / 1000
      if (v ~ /ms$/) return v + 0
      if (v ~ /s$/) return v * 1000
      return v
    }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    $1 == "Requests/sec:" { rate = $2 }
    END { printf "result %s %.0f %.2f %.2f\n", name, rate, p50, p99 }' <<<"$out"
}

results="$work/results"
for round in $(seq "$rounds"); do
  echo "== round $round: badge poll ($connections connections) beside a bare fragment, ${seconds}s each"
  wrk_result bare-fragment "$bare_url" "HX-Request: true" | tee -a "$results"
  calls_before=$("$bench" calls -url "$base" -user alice)
  wrk_result tether-badge "$badge_url" "Cookie: $cookie" "HX-Request: true" | tee -a "$results"
  calls_after=$("$bench" calls -url "$base" -user alice)
  echo "Bitbucket API calls by alice's token while polled: $((calls_after - calls_before))"
  echo "== round $round: ingest ($senders senders) beside bare one-row commits, ${seconds}s each"
  "$bench" commits -dir "$work" -duration "${seconds}s" | tee -a "$results"
  rm -f "$work"/bare.db*
  # The sender runs on one P, as a lean load tool would (wrk's two threads
  # for the badge): a second Go scheduler spinning for work on the same two
  # cores took CPU from Tether that no delivery needed.
  GOMAXPROCS=1 "$bench" deliveries -url "$base" -data-dir "$work/data" -secret-key "$key" \
    -senders "$senders" -duration "${seconds}s" | tee -a "$results"
done

echo "== summary: rates per second, latencies in ms; each ratio is Tether's over its anchor's in the same round"
awk -v rounds="$rounds" '
  $1 == "result" { n[$2]++; rate[$2, n[$2]] = $3; p50[$2, n[$2]] = $4; p99[$2, n[$2]] = $5; note[$2, n[$2]] = $6 }
  function median(a, m,   i, j, t) {
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
  }
  function row(label, k, r) {
    printf "  %-34s %8.0f/s  p50 %7.2f  p99 %7.2f  %s\n", label, rate[k, r], p50[k, r], p99[k, r], note[k, r]
  }
  END {
    for (r = 1; r <= rounds; r++) {
      print "round " r
      row("bare net/http fragment", "bare-fragment", r)
      row("Tether badge poll", "tether-badge", r)
      row("bare one-row commits (sync=FULL)", "bare-commits", r)
      row("Tether signed ingest", "tether-ingest", r)
      badge[r] = rate["tether-badge", r] / rate["bare-fragment", r]
      badge99[r] = p99["tether-badge", r] / p99["bare-fragment", r]
      ingest[r] = rate["tether-ingest", r] / rate["bare-commits", r]
      ingest99[r] = p99["tether-ingest", r]
      printf "  badge/bare %.2f×, p99 %.2f× bare'"'"'s; ingest/bare commits %.2f×, ingest p99 %.1f ms\n", badge[r], badge99[r], ingest[r], ingest99[r]
    }
    printf "median of %d round(s): badge poll %.2f× the bare fragment, p99 %.2f× bare'"'"'s; ingest %.2f× bare one-row commits, p99 %.1f ms\n",
      rounds, median(badge, rounds), median(badge99, rounds), median(ingest, rounds), median(ingest99, rounds)
  }' "$results"
