#!/bin/bash
# prof.sh BINDIR OUT SINKARGS...
DIR=$1; OUT=$2; shift 2
rm -f /tmp/pk.out; taskset -c 0 /work/wt17-after-bin/kafka-mock > /tmp/pk.out 2>/dev/null & M=$!
sleep 0.7; B=$(head -1 /tmp/pk.out)
taskset -c 1 $DIR/gateway-tokio --flavor per-core --threads 1 --listen 127.0.0.1:0 --brokers $B "$@" > /tmp/pg.log 2>&1 & G=$!
sleep 1.2; A=$(grep -o 'listening on [0-9.:]*' /tmp/pg.log | awk '{print $3}')
taskset -c 0 /work/wt17-after-bin/bench-client run --target http://$A --connections 256 --threads 1 --duration 7s --warmup 1s > $OUT.client.txt 2>&1 &
C=$!
sleep 2; perf record -F 2999 -g -o $OUT.data -p $G -- sleep 5 > /dev/null 2>&1
wait $C
kill $G $M; wait $G $M 2>/dev/null
grep throughput $OUT.client.txt
