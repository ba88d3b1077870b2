#!/usr/bin/env bash
# Gather the shard results of the bench-shards Job from its pods' logs (one line
# `BENCH-RESULT <base64 of gzipped JSON>` each) and merge them.
# Usage: deploy/k8s/collect.sh [OUT_DIR] (default results/k8s-<date>); needs kubectl and
# bench-client (target/release, or BENCH_CLIENT=...).
set -euo pipefail
NS="${NS:-kafka-ingest}"
JOB="${JOB:-bench-shards}"
OUT="${1:-results/k8s-$(date -u +%Y-%m-%dT%H%M%S)}"
BENCH_CLIENT="${BENCH_CLIENT:-target/release/bench-client}"
mkdir -p "$OUT"
kubectl -n "$NS" wait --for=condition=complete --timeout=30m "job/$JOB"
n=$(kubectl -n "$NS" get job "$JOB" -o jsonpath='{.spec.completions}')
for i in $(seq 0 $((n - 1))); do
  pod=$(kubectl -n "$NS" get pods -l "job-name=$JOB,batch.kubernetes.io/job-completion-index=$i" \
    -o jsonpath='{.items[0].metadata.name}')
  kubectl -n "$NS" logs "$pod" | sed -n 's/^BENCH-RESULT //p' | base64 -d | gunzip > "$OUT/shard-$i.json"
  [ -s "$OUT/shard-$i.json" ] || { echo "no result in the log of $pod" >&2; exit 1; }
done
"$BENCH_CLIENT" merge "$OUT"/shard-*.json --json "$OUT/merged.json" | tee "$OUT/summary.txt"
echo "merged result: $OUT/merged.json (bench-client report $OUT/merged.json re-renders it)"
