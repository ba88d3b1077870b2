#!/usr/bin/env bash
# Interleaved A/B of the Kafka hot path (issue 17): HTTP and WebSocket, Kafka and null
# sink, gateway CPU per request, and the bare producer at the gateway's own rate.
#
#   scripts/hot-path-ab.sh OUT_DIR ROUNDS NAME=BINDIR[,GATEWAY ARGS] ...
#
#   e.g. scripts/hot-path-ab.sh out 3 before=/tmp/bin-before after=target/release \
#          'linger1=target/release,-X linger.ms=1'
#
# Pinning: the gateway (all its threads: I/O, kafka-poll, librdkafka's) on CPU 1 with
# --threads 1; bench-client (1 thread) and kafka-mock on CPU 0. Each run: a fresh
# kafka-mock (Kafka sink), a fresh gateway, a 1 s warm-up run (discarded), then the
# measured 4 s run (--warmup 0s); the gateway's CPU (utime+stime of the whole process,
# /proc/PID/stat) is read right before and after the measured run. After every HTTP Kafka
# run, producer-bench (the gateways' producer configuration, one thread, pinned to CPU 1)
# sends at that run's ok/s for 4 s to a fresh kafka-mock: the bare producer's CPU per
# record at the same rate. bench-client, kafka-mock and producer-bench come from the
# last variant's BINDIR; a variant's GATEWAY ARGS go to its producer-bench runs too (so
# use only -X there). Once per round, producer-bench flat out ("max.rN" in producer.tsv).
#
# Cases: HTTP = 256 keep-alive connections, closed loop, ack=kafka, 100 B; WS = 16
# connections x window 256, ack=kafka, 100 B.
# Environment: GATEWAYS (default: every variant of `bench-client variants`, the
# workspace's gateways.tsv, which also gives each one's binary and arguments), CASES
# (default "http-kafka http-null ws-kafka ws-null"), NULL_VARIANTS (the variants that run
# the null-sink cases; default all: a sweep of producer settings needs them once).
# Output: OUT_DIR/results.tsv (one row per run, with the hypervisor's steal on CPU 1 and
# CPU 0 over the measured run, from bench-client's JSON), OUT_DIR/producer.tsv, per-run
# client reports and JSON. Summary: scripts/hot-path-summary.py OUT_DIR (it leaves out
# runs with ≥ 15% steal: on this VM they are the "slow mode", not the gateway).
set -u
OUT=$1; ROUNDS=$2; shift 2
VARIANTS=("$@")
[ ${#VARIANTS[@]} -gt 0 ] || { echo "usage: $0 OUT_DIR ROUNDS NAME=BINDIR[,ARGS] ..."; exit 2; }
CASES=${CASES:-"http-kafka http-null ws-kafka ws-null"}
last=${VARIANTS[-1]#*=}; TOOLS=${last%%,*}
CLIENT=$TOOLS/bench-client; MOCK=$TOOLS/kafka-mock; PRODUCER=$TOOLS/producer-bench

# The gateway variants, from bench-client's table: name<TAB>binary<TAB>arguments<TAB>runtime
# (split by hand: `read` would merge the empty arguments field of a tab-separated line).
declare -A GW_BIN GW_ARGS
NAMES=()
while IFS= read -r line; do
  name=${line%%$'\t'*}; rest=${line#*$'\t'}
  GW_BIN[$name]=${rest%%$'\t'*}; rest=${rest#*$'\t'}
  GW_ARGS[$name]=${rest%%$'\t'*}
  NAMES+=("$name")
done < <("$CLIENT" variants)
[ ${#NAMES[@]} -gt 0 ] || { echo "$CLIENT variants printed no gateway table"; exit 2; }
GATEWAYS=${GATEWAYS:-"${NAMES[*]}"}
for gw in $GATEWAYS; do
  [ -n "${GW_BIN[$gw]:-}" ] || { echo "unknown gateway $gw (bench-client variants: ${NAMES[*]})"; exit 2; }
done
mkdir -p "$OUT"
TCK=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

wait_line() { # file regex: first match of regex in file (waits up to 10 s)
  for _ in $(seq 1 200); do
    a=$(grep -o "$2" "$1" 2>/dev/null | head -1)
    [ -n "$a" ] && { echo "$a"; return 0; }
    sleep 0.05
  done
  return 1
}

start_mock() { # tag -> sets MPID, BROKERS
  taskset -c 0 "$MOCK" > "$OUT/$1.mock.out" 2>/dev/null &
  MPID=$!
  BROKERS=$(wait_line "$OUT/$1.mock.out" '^[0-9.:,]*$')
}

stop() { for p in "$@"; do [ -n "$p" ] && { kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; }; done; }

producer_at() { # tag rate(empty: flat out) [-X args]
  local tag=$1 rate=$2; shift 2
  start_mock "$tag.pb"
  # shellcheck disable=SC2068 # the -X arguments split into words on purpose
  taskset -c 1 "$PRODUCER" --brokers "$BROKERS" --duration 4s --payload 100 ${rate:+--rate $rate} \
    $@ --json "$OUT/$tag.pb.json" > /dev/null 2>&1
  stop "$MPID"
  python3 - "$OUT/$tag.pb.json" "$tag" >> "$OUT/producer.tsv" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]}\t{d['records_per_sec']:.0f}\t{d['cpu_us_per_record']:.3f}")
PY
}

run_case() { # variant-spec gateway case round
  local name=${1%%=*} spec=${1#*=}
  local dir=${spec%%,*} extra=""
  [ "$spec" != "$dir" ] && extra=${spec#*,}
  local gw=$2 case=$3 r=$4
  local sink=${case#*-} mode=${case%-*}
  local bin=$dir/${GW_BIN[$gw]} args=${GW_ARGS[$gw]}
  local tag=$name.$gw.$case.r$r
  MPID=""
  if [ "$sink" = kafka ]; then
    start_mock "$tag"
    args="$args --brokers $BROKERS"
  else
    args="$args --sink null"
  fi
  # shellcheck disable=SC2086 # word splitting of the argument lists is intended
  taskset -c 1 "$bin" $args $extra --threads 1 --listen 127.0.0.1:0 > "$OUT/$tag.gw.log" 2>&1 &
  local gpid=$!
  local addr
  addr=$(wait_line "$OUT/$tag.gw.log" 'listening on [0-9.:]*' | awk '{print $3}') \
    || { echo "no listen: $tag"; stop "$gpid" "$MPID"; return; }
  local cargs="--connections 256"
  [ "$mode" = ws ] && cargs="--mode ws --connections 16 --window 256"
  # shellcheck disable=SC2086
  taskset -c 0 "$CLIENT" run --target "http://$addr" $cargs --threads 1 --duration 1s --warmup 0s > /dev/null 2>&1
  local c0; c0=$(cpu_ticks $gpid)
  # shellcheck disable=SC2086
  taskset -c 0 "$CLIENT" run --target "http://$addr" $cargs --threads 1 --duration 4s --warmup 0s \
    --json "$OUT/$tag.json" > "$OUT/$tag.client.txt" 2>&1
  local c1; c1=$(cpu_ticks $gpid)
  stop "$gpid" "$MPID"
  python3 - "$OUT/$tag.json" "$c0" "$c1" "$TCK" "$name" "$gw" "$case" "$r" "$(cut -d' ' -f1 /proc/loadavg)" >> "$OUT/results.tsv" <<'PY'
import json, sys
f, c0, c1, tck, v, gw, case, r, load = sys.argv[1:]
d = json.load(open(f))
t = d['totals']; lat = d['latency']
cpu = (int(c1) - int(c0)) / int(tck)
ok = t['ok']
steal = d.get('cpu_steal', {})
print('\t'.join(map(str, [v, gw, case, r, round(t['ok_per_sec']), t['errors'], round(cpu, 3),
      round(cpu * 1e6 / max(ok, 1), 2), round(lat['p50_us']), round(lat['p99_us']), load,
      round(100 * steal.get('1', 0)), round(100 * steal.get('0', 0))])))
PY
  tail -1 "$OUT/results.tsv"
  if [ "$case" = http-kafka ]; then
    # shellcheck disable=SC2086
    producer_at "$tag" "$(tail -1 "$OUT/results.tsv" | cut -f5)" $extra
  fi
}

[ -f "$OUT/results.tsv" ] || printf 'variant\tgateway\tcase\tround\tok_per_s\terrors\tgw_cpu_s\tgw_cpu_us_per_req\tp50_us\tp99_us\tload1\tsteal_cpu1_pct\tsteal_cpu0_pct\n' > "$OUT/results.tsv"
[ -f "$OUT/producer.tsv" ] || printf 'run\trecords_per_s\tcpu_us_per_record\n' > "$OUT/producer.tsv"
for r in $(seq 1 "$ROUNDS"); do
  producer_at "max.r$r" ""
  for gw in $GATEWAYS; do
    for case in $CASES; do
      for vd in "${VARIANTS[@]}"; do
        if [ "${case#*-}" = null ] && [ -n "${NULL_VARIANTS:-}" ] \
          && [[ " $NULL_VARIANTS " != *" ${vd%%=*} "* ]]; then
          continue
        fi
        run_case "$vd" "$gw" "$case" "$r"
      done
    done
  done
done
