#!/usr/bin/env bash
# soak.sh: run the default scenario against three tiered replicas for
# SOAK_DURATION (default 10m) and sample each replica's goroutine count, heap
# and L1 size every SOAK_EVERY (default 30s). Steady numbers mean no leak.
# Usage: make soak   (or scripts/soak.sh after building bin/productsd and bin/loadtest)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${SOAK_DURATION:-10m}
every=${SOAK_EVERY:-30}
log=$(mktemp)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
./bin/loadtest demo -productsd bin/productsd -duration "$duration" >"$log" 2>&1 &
pid=$!
urls=""
for _ in $(seq 1 120); do
  urls=$(grep -o 'replicas: .*' "$log" | head -n1 | cut -d' ' -f2- || true)
  [ -n "$urls" ] && break
  sleep 1
done
[ -n "$urls" ] || { cat "$log"; echo "soak: replicas did not start"; exit 1; }
echo "soak: $duration against $urls"
printf '%-8s %-22s %10s %12s %8s %5s %6s %9s\n' elapsed replica goroutines heap_bytes l1 gaps breaks lag_max_ms
start=$(date +%s)
while kill -0 "$pid" 2>/dev/null; do
  for u in $urls; do
    m=$(curl -s --max-time 5 "$u/metrics" || true)
    [ -n "$m" ] || continue
    g=$(awk '$1=="go_goroutines"{print $2}' <<<"$m")
    h=$(awk '$1=="go_memstats_heap_alloc_bytes"{printf "%d", $2}' <<<"$m")
    l=$(awk '$1 ~ /^tiercache_l1_entries/{print $2}' <<<"$m")
    gaps=$(awk '$1 ~ /^tiercache_gaps_total/{print $2}' <<<"$m")
    br=$(awk '$1 ~ /^tiercache_subscription_breaks_total/{print $2}' <<<"$m")
    lag=$(awk '$1 ~ /^tiercache_invalidation_lag_max_seconds/{printf "%.1f", $2*1000}' <<<"$m")
    printf '%-8s %-22s %10s %12s %8s %5s %6s %9s\n' "$(( $(date +%s) - start ))s" "${u#http://}" "$g" "$h" "$l" "$gaps" "$br" "$lag"
  done
  sleep "$every"
done
wait "$pid" || true
tail -n 30 "$log"
