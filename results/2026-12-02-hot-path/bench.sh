#!/usr/bin/env bash
# Interleaved before/after measurement of the Kafka hot path (issue 17).
#
#   bench.sh OUT_DIR ROUNDS [VARIANT=BINDIR ...]
#
# Pinning: the gateway (all its threads: I/O, kafka-poll, librdkafka) on CPU 1 with
# --threads 1; bench-client (1 thread) and kafka-mock on CPU 0. Each run: a fresh
# kafka-mock (kafka sink), a fresh gateway, a 1 s warm-up run (discarded), then the
# measured 4 s run (--warmup 0s); the gateway's CPU (utime+stime of the whole process,
# /proc/PID/stat) is read right before and after the measured run.
# Environment: GATEWAYS (default "tokio-per-core uring compio"), CASES (default
# "http-kafka http-null ws-kafka ws-null"), EXTRA_GW_ARGS (passed to every gateway).
set -u
OUT=$1; ROUNDS=$2; shift 2
VARIANTS=("$@")
[ ${#VARIANTS[@]} -eq 0 ] && VARIANTS=(before=/work/wt17-before-bin after=/work/wt17-after-bin)
GATEWAYS=${GATEWAYS:-"tokio-per-core uring compio"}
CASES=${CASES:-"http-kafka http-null ws-kafka ws-null"}
CLIENT=/work/wt17-after-bin/bench-client
MOCK=/work/wt17-after-bin/kafka-mock
mkdir -p "$OUT"
TCK=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14+$15}' /proc/$1/stat; }

wait_listen() { # file
  for _ in $(seq 1 200); do
    a=$(grep -o 'listening on [0-9.:]*' "$1" 2>/dev/null | head -1 | awk '{print $3}')
    [ -n "$a" ] && { echo "$a"; return 0; }
    sleep 0.05
  done
  return 1
}

run_case() { # variant bindir gateway case round
  local v=$1 dir=$2 gw=$3 case=$4 r=$5
  local sink=${case#*-} mode=${case%-*}
  local bin args
  case $gw in
    tokio-per-core) bin=$dir/gateway-tokio; args="--flavor per-core";;
    tokio-multi) bin=$dir/gateway-tokio; args="--flavor multi";;
    uring) bin=$dir/gateway-uring; args="";;
    compio) bin=$dir/gateway-compio; args="";;
  esac
  local tag=$v.$gw.$case.r$r
  local mpid="" brokers=""
  if [ "$sink" = kafka ]; then
    taskset -c 0 $MOCK > "$OUT/$tag.mock.out" 2>/dev/null &
    mpid=$!
    for _ in $(seq 1 100); do brokers=$(head -1 "$OUT/$tag.mock.out" 2>/dev/null); [ -n "$brokers" ] && break; sleep 0.05; done
    args="$args --brokers $brokers"
  else
    args="$args --sink null"
  fi
  taskset -c 1 $bin $args --threads 1 --listen 127.0.0.1:0 ${EXTRA_GW_ARGS:-} > "$OUT/$tag.gw.log" 2>&1 &
  local gpid=$!
  local addr; addr=$(wait_listen "$OUT/$tag.gw.log") || { echo "no listen: $tag"; kill $gpid $mpid; return; }
  local cargs
  if [ "$mode" = http ]; then cargs="--connections 256"; else cargs="--mode ws --connections 16 --window 256"; fi
  taskset -c 0 $CLIENT run --target http://$addr $cargs --threads 1 --duration 1s --warmup 0s > /dev/null 2>&1
  local c0; c0=$(cpu_ticks $gpid)
  taskset -c 0 $CLIENT run --target http://$addr $cargs --threads 1 --duration 4s --warmup 0s --json "$OUT/$tag.json" > "$OUT/$tag.client.txt" 2>&1
  local c1; c1=$(cpu_ticks $gpid)
  kill -TERM $gpid; wait $gpid 2>/dev/null
  [ -n "$mpid" ] && { kill -TERM $mpid; wait $mpid 2>/dev/null; }
  python3 - "$OUT/$tag.json" "$c0" "$c1" "$TCK" "$v" "$gw" "$case" "$r" >> "$OUT/results.tsv" <<'PY'
import json, sys
f, c0, c1, tck, v, gw, case, r = sys.argv[1:]
d = json.load(open(f))
t = d['totals']; lat = d['latency']
cpu = (int(c1) - int(c0)) / int(tck)
ok = t['ok']
print('\t'.join(map(str, [v, gw, case, r, round(t['ok_per_sec']), t['errors'], round(cpu, 3),
      round(cpu * 1e6 / max(ok, 1), 2), round(lat['p50_us']), round(lat['p99_us'])])))
PY
  tail -1 "$OUT/results.tsv"
}

[ -f "$OUT/results.tsv" ] || printf 'variant\tgateway\tcase\tround\tok_per_s\terrors\tgw_cpu_s\tgw_cpu_us_per_req\tp50_us\tp99_us\n' > "$OUT/results.tsv"
producer_bench() { # round
  taskset -c 0 $MOCK > "$OUT/pb.r$1.mock.out" 2>/dev/null &
  local mpid=$! brokers=""
  for _ in $(seq 1 100); do brokers=$(head -1 "$OUT/pb.r$1.mock.out" 2>/dev/null); [ -n "$brokers" ] && break; sleep 0.05; done
  taskset -c 1 /work/wt17-after-bin/producer-bench --brokers "$brokers" --duration 4s --payload 100 --json "$OUT/producer-bench.r$1.json" > /dev/null 2>&1
  kill -TERM $mpid; wait $mpid 2>/dev/null
  echo "producer-bench r$1: $(cat "$OUT/producer-bench.r$1.json")"
}

for r in $(seq 1 "$ROUNDS"); do
  [ -z "${NO_PRODUCER_BENCH:-}" ] && producer_bench "$r"
  for gw in $GATEWAYS; do
    for case in $CASES; do
      for vd in "${VARIANTS[@]}"; do
        run_case "${vd%%=*}" "${vd#*=}" "$gw" "$case" "$r"
      done
    done
  done
done
