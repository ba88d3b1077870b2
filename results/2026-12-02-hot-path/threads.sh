#!/bin/bash
# threads.sh BINDIR GWARGS... : per-thread CPU of the gateway during a 4 s http 256-conn run
DIR=$1; shift
rm -f /tmp/tk.out; taskset -c 0 /work/wt17-after-bin/kafka-mock > /tmp/tk.out 2>/dev/null & M=$!
sleep 0.7; B=$(head -1 /tmp/tk.out)
taskset -c 1 $DIR/gateway-tokio --flavor per-core --threads 1 --listen 127.0.0.1:0 --brokers $B "$@" > /tmp/tg.log 2>&1 & G=$!
sleep 1.2; A=$(grep -o 'listening on [0-9.:]*' /tmp/tg.log | awk '{print $3}')
taskset -c 0 /work/wt17-after-bin/bench-client run --target http://$A --connections 256 --threads 1 --duration 1s --warmup 0s >/dev/null 2>&1
snap() { for t in /proc/$G/task/*; do echo "$(awk '{print $2, $14+$15}' $t/stat)"; done; }
snap > /tmp/s0
taskset -c 0 /work/wt17-after-bin/bench-client run --target http://$A --connections 256 --threads 1 --duration 4s --warmup 0s --json /tmp/tj.json >/dev/null 2>&1
snap > /tmp/s1
grep -h '^\(voluntary\|nonvoluntary\)' /proc/$G/task/*/status | awk '{s[$1]+=$2} END {for (k in s) print k, s[k]}'
kill $G $M; wait $G $M 2>/dev/null
OK=$(python3 -c "import json;print(json.load(open('/tmp/tj.json'))['totals']['ok'])")
echo "ok=$OK"
paste /tmp/s0 /tmp/s1 | awk -v ok=$OK '{d=$4-$2; tot+=d; printf "%-16s %5d ticks %6.2f us/req\n", $1, d, d*10000/ok} END {printf "total %d ticks %.2f us/req\n", tot, tot*10000/ok}'
