#!/usr/bin/env bash
# one.sh TAG MODE(http|ws) GWARGS... ; env MOCKCPU(0) GWCPU(1) CLIENTCPU(0) DUR(4)
set -u
B=${B:-/work/main/target/release}
TAG=$1; MODE=$2; shift 2
O=/tmp/x/$TAG; mkdir -p $O
nice -n ${MOCKNICE:-0} taskset -c ${MOCKCPU:-0} $B/kafka-mock > $O/mock.out 2>/dev/null & MPID=$!
for i in $(seq 100); do BR=$(head -1 $O/mock.out 2>/dev/null); [ -n "$BR" ] && break; sleep 0.05; done
taskset -c ${GWCPU:-1} $B/gateway-tokio --flavor ${FLAVOR:-per-core} --brokers $BR --threads 1 --listen 127.0.0.1:0 "$@" > $O/gw.log 2>&1 & GPID=$!
for i in $(seq 100); do A=$(grep -o 'listening on [0-9.:]*' $O/gw.log | head -1 | awk '{print $3}'); [ -n "$A" ] && break; sleep 0.05; done
[ -n "${RENICE:-}" ] && for t in /proc/$GPID/task/*; do case $(cat $t/comm) in ${RENICE_PAT:-rdk:broker*}) renice -n $RENICE -p $(basename $t) >/dev/null;; esac; done
C="--connections 256"; [ $MODE = ws ] && C="--mode ws --connections 16 --window 256"
taskset -c ${CLIENTCPU:-0} $B/bench-client run --target http://$A $C --threads 1 --duration 1s --warmup 0s >/dev/null 2>&1
grep -E "^cpu[01] " /proc/stat > $O/st0
cat /proc/$GPID/stat /proc/$MPID/stat | awk '{print $14+$15}' > $O/cpu0
for t in /proc/$GPID/task/*; do echo "$(cat $t/comm) $(grep -E "^(non)?voluntary_ctxt" $t/status | awk "{print \$2}" | tr "\n" " ")"; done > $O/cs0
taskset -c ${CLIENTCPU:-0} $B/bench-client run --target http://$A $C --threads 1 --duration ${DUR:-4}s --warmup 0s --json $O/c.json > $O/c.txt 2>&1 &
CPID=$!
sleep 1; top -H -b -n1 -d2 -p $GPID,$MPID,$CPID > /dev/null; top -H -b -n 2 -d 2 -p $GPID,$MPID,$CPID | awk '/^top/{n++} n==2' | sed -n '7,30p' > $O/top.txt
wait $CPID
grep -E "^cpu[01] " /proc/stat > $O/st1
cat /proc/$GPID/stat /proc/$MPID/stat | awk '{print $14+$15}' > $O/cpu1
for t in /proc/$GPID/task/*; do echo "$(cat $t/comm) $(grep -E "^(non)?voluntary_ctxt" $t/status | awk "{print \$2}" | tr "\n" " ")"; done > $O/cs1
curl -s http://$A/metrics > $O/metrics.txt
kill $GPID; wait $GPID; kill $MPID; wait $MPID
python3 - $O <<'PY'
import json,sys
o=sys.argv[1]; d=json.load(open(o+'/c.json')); t=d['totals']; l=d['latency']
c0=[int(x) for x in open(o+'/cpu0')]; c1=[int(x) for x in open(o+'/cpu1')]
ok=t['ok']
a=[l.split() for l in open(o+'/st0')]; b=[l.split() for l in open(o+'/st1')]
st=[]
for x,y in zip(a,b):
    d=[int(j)-int(i) for i,j in zip(x[1:9],y[1:9])]; st.append(f"{x[0]} steal {100*d[7]/max(sum(d),1):.0f}% idle {100*(d[3]+d[4])/max(sum(d),1):.0f}%")
print(f"{o.split('/')[-1]}: {' '.join(st)} : ok/s {t['ok_per_sec']:.0f} p50 {l['p50_us']/1000:.2f}ms p99 {l['p99_us']/1000:.2f}ms gwcpu {(c1[0]-c0[0])/100:.2f}s mockcpu {(c1[1]-c0[1])/100:.2f}s gw us/req {(c1[0]-c0[0])*1e4/max(ok,1):.2f}")
PY
grep -E "^gateway_delivery_latency_seconds_(bucket|count|sum)" $O/metrics.txt | tr '\n' ' ' | sed 's/gateway_delivery_latency_seconds_//g'; echo
cat $O/top.txt | awk '{print $9, $12}' | head -12 | tr '\n' ';'; echo
