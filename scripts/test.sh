#!/usr/bin/env bash
# The test command: installs what the tests need (Debian's Chromium for the
# browser tests), checks generated code is fresh and the tree is gofmt/vet
# clean, then runs every test. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's chromium for the browser tests.
. scripts/debian.sh
need_deb chromium

echo "== templ generate (generated files must be committed and fresh)"
sum() { find . -name '*_templ.go' -not -path './.git/*' -print0 | sort -z | xargs -0 sha256sum; }
before=$(sum)
go tool templ generate >/dev/null
after=$(sum)
if [ "$before" != "$after" ]; then
  echo "templ output was stale: run 'go tool templ generate' and commit the *_templ.go files" >&2
  diff <(echo "$before") <(echo "$after") >&2 || true
  exit 1
fi

echo "== gofmt and go vet"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go') | grep -v '_templ.go$' || true)
if [ -n "$unformatted" ]; then
  echo "gofmt wants: $unformatted" >&2
  exit 1
fi
go vet ./...

# Every test but the browser ones runs under the race detector. The
# browser tests (TestBrowser…, Chromium driving whole pages) run without
# it: under -race Tether's pure-Go SQLite is several times slower, and
# those sixteen tests alone would take the run past ten minutes on two
# cores; the same flows run under -race in the HTTP tests.
echo "== go test -race (all but the browser tests)"
go test -race -count=1 -timeout 30m -skip '^TestBrowser' ./...
echo "== browser tests (Chromium)"
go test -count=1 -timeout 30m -run '^TestBrowser' ./...

# A short run of each fuzz target (seeded from Bitbucket's recorded
# payloads and the test tables); FUZZTIME lengthens it. A failing input is
# saved under the package's testdata/fuzz/ and replayed by go test.
# Minimizing each new interesting input is capped at 2 s (the default, 60 s,
# keeps a worker busy past the fuzz time with no execs reported); the last
# progress line says how many inputs each target ran.
echo "== fuzz (${FUZZTIME:-10s} each)"
# Go 1.26's fuzz coordinator can fail a target at the end of -fuzztime
# with a bare "context deadline exceeded" and nothing found (a race fixed
# in Go 1.27: go.dev/issue/75804); such a run is tried once more, while a
# real finding (a failing input written to testdata/fuzz) fails at once.
fuzz() {
  local out try
  for try in 1 2; do
    if out=$(go test -run='^$' -fuzz="^$2\$" -fuzztime="${FUZZTIME:-10s}" -fuzzminimizetime=2s "$1" 2>&1); then
      echo "$2: $(grep -o 'execs: [0-9]*' <<<"$out" | tail -1)"
      return
    fi
    if [ "$try" = 2 ] || grep -q 'Failing input written' <<<"$out" || ! grep -q '^    context deadline exceeded$' <<<"$out"; then
      echo "$out" >&2
      exit 1
    fi
    echo "$2: the fuzz coordinator's deadline race (go.dev/issue/75804), nothing found; once more"
  done
}
fuzz ./internal/bitbucket FuzzParsePush
fuzz ./internal/bitbucket FuzzParsePullRequest
fuzz ./internal/bitbucket FuzzVerifySignature
fuzz ./internal/repourl FuzzParse
fuzz ./handlers FuzzLocalTarget
fuzz ./handlers FuzzFormDecoding
