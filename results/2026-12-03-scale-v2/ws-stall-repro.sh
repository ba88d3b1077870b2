#!/usr/bin/env bash
# Reproduces the compio ws-many partial stall: one kafka-mock shared by N runs (as in
# compare), a fresh gateway per run (GWBIN, e.g. "gateway-compio" or
# "gateway-tokio --flavor per-core"), 10,000 WebSockets x 2 msg/s, 2 s warmup + 2 s.
# usage: GWBIN=gateway-compio BIN_DIR=target/release ws-stall-repro.sh [N]
B=${BIN_DIR:-target/release}
taskset -c 0 $B/kafka-mock > /tmp/wsr2.mock 2>/dev/null & MP=$!
for _ in $(seq 1 100); do BR=$(head -1 /tmp/wsr2.mock); [ -n "$BR" ] && break; sleep 0.05; done
for i in $(seq 1 "${1:-12}"); do
  taskset -c 1 $B/${GWBIN:-gateway-compio} --threads 1 --backlog 4096 --brokers $BR --listen 127.0.0.1:0 > /tmp/wsr2.gw 2>&1 & GP=$!
  for _ in $(seq 1 100); do A=$(grep -o 'listening on [0-9.:]*' /tmp/wsr2.gw | awk '{print $3}'); [ -n "$A" ] && break; sleep 0.05; done
  taskset -c 0 $B/bench-client run --target http://$A --mode ws --connections 10000 --window 4 --rate 20000 --connect-rate 10000 --source-ips 127.0.0.2-127.0.0.9 --warmup 2s --duration 2s --threads 1 > /tmp/wsr2.out.$i 2>&1
  echo "run $i: $(grep -E '^throughput' /tmp/wsr2.out.$i | cut -c1-90) | $(grep -A1 'stall(s):' /tmp/wsr2.out.$i | tail -1)"
  kill -TERM $GP; wait $GP 2>/dev/null
done
kill -TERM $MP; wait $MP 2>/dev/null
