"""The checks of deploy/observability/check.sh that need Python (run in its venv).

  check.py schema DASHBOARD SCHEMA
      the dashboard JSON against the JSON schema, plus what a schema cannot say: unique
      panel ids and refIds, panels inside 24 columns and not overlapping, every panel on the
      ${datasource} variable, every $variable used defined.
  check.py live PHASE PROMETHEUS_URL METRICS_URLS DASHBOARD RULES
      every dashboard target, every variable query and every alert expression evaluated
      through PROMETHEUS_URL/api/v1/query; every metric name they use present in one of
      the gateways' METRICS_URLS (comma-separated). An empty result fails in either PHASE
      (`idle`: before any traffic, `loaded`: after some): every series a panel or rule
      uses exists from the first scrape.
"""
import json
import re
import sys
import urllib.parse
import urllib.request

import jsonschema
import yaml

# Grafana's variables as check.sh's Prometheus sees them: every job/runtime/instance, and a
# rate window covering the whole run.
SUBSTITUTE = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "5m",
    "$job": ".+",
    "$runtime": ".+",
    "$instance": ".+",
}
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range"}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan", "atan2",
    # aggregation operators (may be followed by `by (...)` rather than a parenthesis)
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group",
}
COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")


def fail(msg):
    print(f"observability: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def targets(dash):
    for p in dash["panels"]:
        for t in p["targets"]:
            yield f"panel {p['id']} \"{p['title']}\" {t['refId']}", t["expr"]


def variable_queries(dash):
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            m = re.fullmatch(r"label_values\((.+),\s*([a-zA-Z_]\w*)\)", v["query"]["query"])
            if not m:
                fail(f"variable {v['name']}: not label_values(EXPR, LABEL)")
            yield v["name"], m.group(1), m.group(2)


def schema(dashboard_path, schema_path):
    dash = json.load(open(dashboard_path))
    jsonschema.validate(dash, json.load(open(schema_path)),
                        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    ids = [p["id"] for p in dash["panels"]]
    if len(ids) != len(set(ids)):
        fail(f"duplicate panel ids {ids}")
    cells = {}
    for p in dash["panels"]:
        g = p["gridPos"]
        if g["x"] + g["w"] > 24:
            fail(f"panel {p['id']}: x+w = {g['x'] + g['w']} > 24 columns")
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if (x, y) in cells:
                    fail(f"panel {p['id']} overlaps panel {cells[(x, y)]}")
                cells[(x, y)] = p["id"]
        refs = [t["refId"] for t in p["targets"]]
        if len(refs) != len(set(refs)):
            fail(f"panel {p['id']}: duplicate refIds {refs}")
        for ds in [p["datasource"]] + [t["datasource"] for t in p["targets"]]:
            if ds != {"type": "prometheus", "uid": "${datasource}"}:
                fail(f"panel {p['id']}: datasource {ds} is not the ${{datasource}} variable")
    defined = {v["name"] for v in dash["templating"]["list"]} | GRAFANA_BUILTINS
    used = [(where, expr) for where, expr in targets(dash)]
    used += [(f"variable {n}", e) for n, e, _ in variable_queries(dash)]
    for where, expr in used:
        for var in re.findall(r"\$\{?(\w+)", expr):
            if var not in defined:
                fail(f"{where}: ${var} is not a dashboard variable")
    print(f"observability: dashboard valid against {schema_path}: {len(ids)} panels, "
          f"{sum(1 for _ in targets(dash))} queries, layout and variables consistent")


def substitute(expr):
    for k in sorted(SUBSTITUTE, key=len, reverse=True):
        expr = expr.replace(k, SUBSTITUTE[k])
    return expr


def metric_names(expr):
    """The metric names in a PromQL expression (strings, matchers, ranges and label lists
    removed; what is left that is not a function or keyword is a metric)."""
    s = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", "", s)
    s = re.sub(r"\[[^\]]*\]", "", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", s)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", s):
        word, rest = m.group(0), s[m.end():].lstrip()
        if word.lower() in PROMQL_WORDS or rest.startswith("("):
            continue
        if re.fullmatch(r"[0-9.e+-]+", word):
            continue
        names.add(word)
    return names


def with_bool(expr):
    """`SIGNAL <cmp> THRESHOLD` -> `SIGNAL <cmp> bool THRESHOLD` at the one top-level
    comparison: returns a series for every series of SIGNAL, firing or not."""
    depth, quote, i, found = 0, False, 0, []
    while i < len(expr):
        c = expr[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == '"':
                quote = False
        elif c == '"':
            quote = True
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            for op in COMPARISONS:
                if expr.startswith(op, i) and not expr.startswith("=~", i):
                    found.append((i, op))
                    i += len(op) - 1
                    break
        i += 1
    if len(found) != 1:
        fail(f"alert expression needs exactly one top-level comparison: {expr}")
    at, op = found[0]
    return f"{expr[:at + len(op)]} bool{expr[at + len(op):]}"


def query(prom, expr):
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        body = json.load(urllib.request.urlopen(url, timeout=10))
    except urllib.error.HTTPError as e:
        body = json.load(e)
    if body.get("status") != "success":
        fail(f"query failed: {expr}\n  {body.get('errorType')}: {body.get('error')}")
    return body["data"]["result"]


def live(phase, prom, metrics_url, dashboard_path, rules_path):
    dash = json.load(open(dashboard_path))
    rules = [r for g in yaml.safe_load(open(rules_path))["groups"] for r in g["rules"]]
    exposed = set()
    for url in metrics_url.split(","):
        for line in urllib.request.urlopen(url, timeout=10).read().decode().splitlines():
            if line and not line.startswith("#"):
                exposed.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    checks = [(w, substitute(e), e) for w, e in targets(dash)]
    for name, expr, label in variable_queries(dash):
        checks.append((f"variable {name} (label {label})", substitute(expr), expr))
    for r in rules:
        checks.append((f"alert {r['alert']}", with_bool(r["expr"]), r["expr"]))
    empty, used = [], set()
    for where, expr, original in checks:
        used |= metric_names(original)
        result = query(prom, expr)
        if where.startswith("variable"):
            label = where.rsplit("label ", 1)[1].rstrip(")")
            result = [s for s in result if label in s["metric"]]
        if not result:
            empty.append((where, original))
    firing = [r["alert"] for r in rules if query(prom, r["expr"])]
    missing = sorted(n for n in used if n not in exposed)
    if missing:
        fail(f"metric names used by the dashboard/rules but not in {metrics_url}: {missing}")
    print(f"observability [{phase}]: {len(checks)} expressions evaluated "
          f"({sum(1 for _ in targets(dash))} panel queries, {len(rules)} alerts, variables); "
          f"{len(used)} metric names, all in the scraped /metrics")
    if firing:
        print(f"observability [{phase}]: note: firing on this gateway: {', '.join(firing)}")
    for where, expr in empty:
        print(f"observability [{phase}]: EMPTY {where}: {expr}")
    if empty:
        fail(f"{len(empty)} expressions returned no series on scraped gateways ({phase})")


if __name__ == "__main__":
    if sys.argv[1:2] == ["schema"] and len(sys.argv) == 4:
        schema(*sys.argv[2:])
    elif sys.argv[1:2] == ["live"] and len(sys.argv) == 7:
        live(*sys.argv[2:])
    else:
        fail(__doc__)
