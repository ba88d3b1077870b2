#!/usr/bin/env python3
"""Medians of bench.sh's results.tsv per (gateway, case, variant), and the issue's ratios.

usage: summarize.py RESULTS_TSV [PRODUCER_US_PER_RECORD]
"""
import csv, statistics, sys

rows = list(csv.DictReader(open(sys.argv[1]), delimiter='\t'))
prod = float(sys.argv[2]) if len(sys.argv) > 2 else None
med = {}
for r in rows:
    k = (r['gateway'], r['case'], r['variant'])
    med.setdefault(k, []).append(r)
def m(k, f):
    v = [float(r[f]) for r in med.get(k, [])]
    return statistics.median(v) if v else float('nan')
gws = sorted({r['gateway'] for r in rows}, key=lambda g: ['tokio-per-core', 'tokio-multi', 'uring', 'compio'].index(g))
variants = sorted({r['variant'] for r in rows})
n = max(len(v) for v in med.values())
print(f"medians of {n} interleaved round(s)\n")
print("| gateway | variant | HTTP kafka ok/s | HTTP null ok/s | kafka/null | CPU µs/req kafka | CPU µs/req null | kafka − null µs | WS kafka msg/s | WS null msg/s | WS kafka/null | WS CPU µs/msg kafka | WS CPU µs/msg null |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for g in gws:
    for v in variants:
        hk, hn = m((g, 'http-kafka', v), 'ok_per_s'), m((g, 'http-null', v), 'ok_per_s')
        ck, cn = m((g, 'http-kafka', v), 'gw_cpu_us_per_req'), m((g, 'http-null', v), 'gw_cpu_us_per_req')
        wk, wn = m((g, 'ws-kafka', v), 'ok_per_s'), m((g, 'ws-null', v), 'ok_per_s')
        wck, wcn = m((g, 'ws-kafka', v), 'gw_cpu_us_per_req'), m((g, 'ws-null', v), 'gw_cpu_us_per_req')
        print(f"| {g} | {v} | {hk:.0f} | {hn:.0f} | {hk/hn:.2f} | {ck:.2f} | {cn:.2f} | {ck-cn:.2f} | {wk:.0f} | {wn:.0f} | {wk/wn:.2f} | {wck:.2f} | {wcn:.2f} |")
if prod:
    print(f"\nbare producer: {prod:.2f} µs/record; WS bound = 1/(null µs/msg + producer µs/record)")
    print("\nCPU-normalized (robust to a shared machine): efficiency = (null µs + producer µs) / kafka µs")
    print("\n| gateway | variant | WS kafka / bound | WS efficiency | HTTP kafka CPU − (null + producer) µs |")
    print("|---|---|---|---|---|")
    for g in gws:
        for v in variants:
            wcn = m((g, 'ws-null', v), 'gw_cpu_us_per_req')
            wk = m((g, 'ws-kafka', v), 'ok_per_s')
            bound = 1e6 / (wcn + prod)
            ck, cn = m((g, 'http-kafka', v), 'gw_cpu_us_per_req'), m((g, 'http-null', v), 'gw_cpu_us_per_req')
            wck = m((g, 'ws-kafka', v), 'gw_cpu_us_per_req')
            print(f"| {g} | {v} | {wk/bound:.2f} | {(wcn + prod)/wck:.2f} | {ck - cn - prod:+.2f} |")

# The producer's cost at the gateway's own rate (runs-producer/rate-N.json, linear
# interpolation between the measured rates, clamped at the ends).
import glob, json, os
pts = []
for f in glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'runs-producer', 'rate-*.json')):
    d = json.load(open(f))
    if d.get('rate'):
        pts.append((d['records_per_sec'], d['cpu_us_per_record']))
pts.sort()
def at_rate(r):
    if r <= pts[0][0]:
        return pts[0][1]
    for (r0, c0), (r1, c1) in zip(pts, pts[1:]):
        if r <= r1:
            return c0 + (c1 - c0) * (r - r0) / (r1 - r0)
    return pts[-1][1]
if pts:
    print("\nRate-matched: the bare producer's CPU per record at the gateway's Kafka ok/s (runs-producer/)")
    print("\n| gateway | variant | HTTP kafka ok/s | producer µs/rec at that rate | HTTP kafka CPU − (null + producer@rate) µs |")
    print("|---|---|---|---|---|")
    for g in gws:
        for v in variants:
            hk = m((g, 'http-kafka', v), 'ok_per_s')
            ck, cn = m((g, 'http-kafka', v), 'gw_cpu_us_per_req'), m((g, 'http-null', v), 'gw_cpu_us_per_req')
            p = at_rate(hk)
            print(f"| {g} | {v} | {hk:.0f} | {p:.2f} | {ck - cn - p:+.2f} |")
