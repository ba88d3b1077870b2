#!/usr/bin/env python3
"""Medians of scripts/hot-path-ab.sh's runs per (gateway, variant), against issue 17's targets.

usage: hot-path-summary.py OUT_DIR

Reads OUT_DIR/results.tsv and OUT_DIR/producer.tsv. Per gateway and variant:
Runs with >= 15% hypervisor steal on either CPU are left out (counted in the output).
- HTTP (256 connections, closed loop): Kafka and null ok/s and their ratio (target: the
  best gateway >= 0.85), gateway CPU per request, and the gap
  kafka µs - (null µs + bare producer µs per record at the same rate) (target <= 1.5).
  The last column is what that producer cost allows: the Kafka/null ratio a gateway
  would reach if its Kafka path cost exactly null + producer per request and nothing else
  bound it. A variant without null runs (NULL_VARIANTS) is compared with the median of
  all of that gateway's null runs.
- WebSocket (16 x 256): Kafka msg/s against its bound 1 / (null µs/msg + bare producer
  µs/record flat out) (target >= 0.90), and the same by CPU: (null + producer) / kafka µs.
"""
import csv
import os
import statistics
import subprocess
import sys


def gateway_order():
    """Gateway names in the order of the variant table, from `bench-client variants`:
    $BENCH_CLIENT, else the repository's target/release or target/debug bench-client."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    given = os.environ.get('BENCH_CLIENT')
    candidates = [given] if given else [
        os.path.join(repo, 'target', profile, 'bench-client') for profile in ('release', 'debug')]
    for client in candidates:
        if os.access(client, os.X_OK):
            table = subprocess.run([client, 'variants'], capture_output=True, text=True,
                                   check=True).stdout
            return [line.split('\t')[0] for line in table.splitlines() if line.strip()]
    sys.exit("hot-path-summary.py: no bench-client to read the gateway variants from "
             "(build it, or set BENCH_CLIENT)")


out = sys.argv[1]
STEAL_PCT = 15  # bench-client's bound::STEAL
all_rows = list(csv.DictReader(open(os.path.join(out, 'results.tsv')), delimiter='\t'))


def stolen(r):
    """The hypervisor took >= 15% of either CPU over the run (files without the steal
    columns: never)."""
    return any(float(r.get(k) or 0) >= STEAL_PCT for k in ('steal_cpu1_pct', 'steal_cpu0_pct'))


rows = [r for r in all_rows if not stolen(r)]
prod = list(csv.DictReader(open(os.path.join(out, 'producer.tsv')), delimiter='\t'))

runs = {}
for r in rows:
    runs.setdefault((r['gateway'], r['case'], r['variant']), []).append(r)


def med(g, case, v, f):
    x = [float(r[f]) for r in runs.get((g, case, v), [])]
    return statistics.median(x) if x else float('nan')


def med_null(g, case, v, f):
    """A variant's null-sink median; a variant that ran no null cases (hot-path-ab.sh's
    NULL_VARIANTS) gets the median of every variant's null runs of that gateway."""
    if runs.get((g, case, v)):
        return med(g, case, v, f)
    x = [float(r[f]) for (rg, rc, _), rs in runs.items() if (rg, rc) == (g, case) for r in rs]
    return statistics.median(x) if x else float('nan')


def prod_med(pred):
    x = [float(p['cpu_us_per_record']) for p in prod if pred(p['run'])]
    return statistics.median(x) if x else float('nan')


order = gateway_order()
gws = sorted({r['gateway'] for r in rows}, key=order.index)
variants = list(dict.fromkeys(r['variant'] for r in rows))
n = max(len(v) for v in runs.values())
loads = [float(r['load1']) for r in rows if r.get('load1')]
flat = prod_med(lambda run: run.startswith('max.'))
flat_rate = statistics.median(
    float(p['records_per_s']) for p in prod if p['run'].startswith('max.'))
if len(rows) < len(all_rows):
    print(f"left out: {len(all_rows) - len(rows)} of {len(all_rows)} runs with hypervisor steal "
          f">= {STEAL_PCT}% on CPU 0 or 1 (their figures are the host's, not the gateway's)\n")
print(f"medians of up to {n} interleaved round(s); load average (1 min) during the runs "
      f"{min(loads):.2f}-{max(loads):.2f}; bare producer flat out: {flat_rate:,.0f} records/s, "
      f"{flat:.2f} µs/record\n")

has_null = any(r['case'].endswith('null') for r in rows)
if not has_null:
    print("(no null-sink runs: the tables against the null sink are left out)")
else:
    print("| gateway | variant | HTTP kafka ok/s | HTTP null ok/s | kafka / null | p50 kafka / null ms "
          "| gw µs/req kafka | gw µs/req null | bare producer µs/rec at the kafka rate "
          "| kafka − (null + producer) µs | CPU bound on kafka / null = null / (null + producer) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for g in gws:
        for v in variants:
            hk, hn = med(g, 'http-kafka', v, 'ok_per_s'), med_null(g, 'http-null', v, 'ok_per_s')
            pk, pn = med(g, 'http-kafka', v, 'p50_us'), med_null(g, 'http-null', v, 'p50_us')
            ck, cn = (med(g, 'http-kafka', v, 'gw_cpu_us_per_req'),
                      med_null(g, 'http-null', v, 'gw_cpu_us_per_req'))
            p = prod_med(lambda run, g=g, v=v: run.startswith(f"{v}.{g}.http-kafka.r"))
            print(f"| {g} | {v} | {hk:,.0f} | {hn:,.0f} | {hk / hn:.2f} | {pk / 1000:.2f} / "
                  f"{pn / 1000:.2f} | {ck:.2f} | {cn:.2f} | {p:.2f} | {ck - cn - p:+.2f} | {cn / (cn + p):.2f} |")

    print("\n| gateway | variant | WS kafka msg/s | WS null msg/s | gw µs/msg kafka | gw µs/msg null "
          "| bound msg/s = 1e6 / (null + producer flat out) | kafka / bound | by CPU: (null + producer) / kafka |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for g in gws:
        for v in variants:
            wk, wn = med(g, 'ws-kafka', v, 'ok_per_s'), med_null(g, 'ws-null', v, 'ok_per_s')
            ck, cn = (med(g, 'ws-kafka', v, 'gw_cpu_us_per_req'),
                      med_null(g, 'ws-null', v, 'gw_cpu_us_per_req'))
            bound = 1e6 / (cn + flat)
            print(f"| {g} | {v} | {wk:,.0f} | {wn:,.0f} | {ck:.2f} | {cn:.2f} | {bound:,.0f} | "
                  f"{wk / bound:.2f} | {(cn + flat) / ck:.2f} |")

# Paired by round: runs of the same gateway and case in one round ran back to back, so
# their ratio cancels most of the machine's drift between rounds.
if len(variants) > 1:
    base = variants[0]
    print(f"\nok/s of each variant ÷ {base}'s, paired by round (median [each round]; "
          f"wins = rounds where the variant was faster)\n")
    print("| case | gateway | " + " | ".join(variants[1:]) + " |")
    print("|---|---|" + "---|" * (len(variants) - 1))
    for case in sorted({r['case'] for r in rows if r['case'].endswith('kafka')}):
        for g in gws:
            cells = []
            for v in variants[1:]:
                ratios = []
                for r in runs.get((g, case, v), []):
                    b = [x for x in runs.get((g, case, base), []) if x['round'] == r['round']]
                    if b:
                        ratios.append(float(r['ok_per_s']) / float(b[0]['ok_per_s']))
                if ratios:
                    wins = sum(x > 1 for x in ratios)
                    cells.append(f"{statistics.median(ratios):.2f} "
                                 f"[{', '.join(f'{x:.2f}' for x in ratios)}] {wins}/{len(ratios)}")
                else:
                    cells.append("–")
            print(f"| {case} | {g} | " + " | ".join(cells) + " |")
