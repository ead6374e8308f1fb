#!/usr/bin/env bash
# wrk-ab.sh: an L1 hit of productsd against the static ceiling, with wrk.
# Starts one tiered productsd (on a database of its own, dropped at the end)
# and `loadtest static -from` it (the same bytes and headers), then runs wrk
# against each in turn, ROUNDS times (default 5) for DURATION each (default
# 3s), and prints per round the req/s of each, their ratio, and each
# server's CPU per request read from /proc. The median ratio comes last.
# Usage: scripts/wrk-ab.sh   (after building bin/productsd and bin/loadtest,
# or BIN=dir for another build;
# needs wrk: apt-get install wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk-ab: wrk is not installed (apt-get install wrk)"; exit 1; }
rounds=${ROUNDS:-5}
duration=${DURATION:-3s}
bin=${BIN:-./bin} # where productsd and loadtest are
admin=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
db=wrkab_$$
psql "$admin" -qc "CREATE DATABASE $db" >/dev/null
dburl=$(sed -E "s#/[^/?]+(\?|$)#/$db\1#" <<<"$admin")
export DATABASE_URL=$dburl CACHE_NAMESPACE=wrkab-$$
logs=$(mktemp -d)
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$logs"
  psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true
  redis-cli --scan --pattern "wrkab-$$:*" 2>/dev/null | xargs -r redis-cli del >/dev/null 2>&1 || true
}
trap cleanup EXIT
# wait_url LOG PATTERN PATH: the first http:// URL in the lines of LOG
# matching PATTERN, once a GET of URL+PATH answers 2xx (10 s at most).
wait_url() {
  local u
  for _ in $(seq 1 100); do
    u=$(grep -o "$2" "$1" | grep -o 'http://[0-9.:]*' | head -n1 || true)
    if [ -n "$u" ] && curl -sf "$u$3" >/dev/null; then
      echo "$u"
      return 0
    fi
    sleep 0.1
  done
  cat "$1" >&2
  return 1
}
LOG_LEVEL=warn "$bin"/productsd migrate >/dev/null
LOG_LEVEL=warn "$bin"/productsd seed -n 100 >/dev/null
"$bin"/productsd -addr 127.0.0.1:0 >"$logs/productsd" 2>&1 &
pd=$!
pids+=("$pd")
url=$(wait_url "$logs/productsd" 'productsd listening on http://[0-9.:]*' /readyz) || { echo "wrk-ab: productsd did not start"; exit 1; }
id=$(psql "$dburl" -Atc 'SELECT id FROM products LIMIT 1')
"$bin"/loadtest static -addr 127.0.0.1:0 -from "$url/products/$id" >"$logs/static" 2>&1 &
st=$!
pids+=("$st")
surl=$(wait_url "$logs/static" 'listening on http://[0-9.:]*' "/products/$id") || { echo "wrk-ab: loadtest static did not start"; exit 1; }
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
ticks=$(getconf CLK_TCK)
one() { # pid url -> "req/s cpu_us_per_request"
  local c0 c1 out
  c0=$(cpu "$1")
  out=$(wrk -t2 -c64 -d"$duration" "$2/products/$id")
  c1=$(cpu "$1")
  awk -v c="$((c1 - c0))" -v t="$ticks" '/Requests\/sec/{rps=$2} /requests in/{n=$1} END{printf "%.0f %.1f\n", rps, c/t*1e6/n}' <<<"$out"
}
echo "wrk -t2 -c64 -d$duration, $rounds rounds: productsd (L1 hits) $url, static $surl"
printf '%-6s %12s %12s %7s %18s %18s\n' round l1_req/s static_req/s ratio l1_cpu_us/req static_cpu_us/req
ratios=()
for r in $(seq 1 "$rounds"); do
  read -r a ac < <(one "$pd" "$url")
  read -r b bc < <(one "$st" "$surl")
  ratio=$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.3f", a/b}')
  ratios+=("$ratio")
  printf '%-6s %12s %12s %7s %18s %18s\n' "$r" "$a" "$b" "$ratio" "$ac" "$bc"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{v[NR]=$1} END{m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "median ratio %.3f (target >= 0.95)\n", m}'
