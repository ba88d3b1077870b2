#!/usr/bin/env bash
# Offline validation of deploy/k8s (CI runs it from .ci/run):
#  * every plain manifest (base/, bench/) against the Kubernetes OpenAPI schemas with
#    kubernetes-validate --strict (unknown fields are errors);
#  * every overlay rendered (its JSON patches applied to the base Deployment, as
#    `kubectl kustomize` would) and validated the same way;
#  * the Strimzi resources (CRDs, no schema in kubernetes-validate): parsed, and checked for
#    the fields the gateway config relies on (cluster name, plain listener on 9092, node pool);
#  * the ConfigMap against the gateways' defaults: every GATEWAY_<FLAG> equals the default in
#    `gateway-tokio --help` (GATEWAY_BIN, default target/debug/gateway-tokio; without it the
#    table in docs/wire-contract.md), every GATEWAY_X_<PROPERTY> the PRODUCER_DEFAULTS in
#    common/src, except the values set on purpose (ON_PURPOSE below, each with its reason);
#  * the hardening: pod and container securityContext, probes, PodDisruptionBudget, and the
#    io_uring overlays on the Localhost profile deploy/k8s/seccomp/io-uring.json (no
#    Unconfined anywhere); the ServiceMonitor/PodMonitor (CRDs) parsed and matched to the
#    Service and the pods.
# kubernetes-validate is installed once into a venv under target/ (PyPI; needs python3-venv).
# Usage: deploy/k8s/validate.sh [extra manifest files to validate, e.g. a broken one]
set -euo pipefail
cd "$(dirname "$0")/../.."
K8S=deploy/k8s
VENV="${K8S_VENV:-target/k8s-venv}"
if [ ! -x "$VENV/bin/kubernetes-validate" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate>=1.30"
fi
PY="$VENV/bin/python"
OUT="target/k8s-rendered"
rm -rf "$OUT" && mkdir -p "$OUT"
GATEWAY_BIN="${GATEWAY_BIN:-target/debug/gateway-tokio}"
if [ -x "$GATEWAY_BIN" ]; then
  "$GATEWAY_BIN" --help > "$OUT/gateway-help.txt"
else
  echo "k8s: no $GATEWAY_BIN: ConfigMap checked against docs/wire-contract.md's defaults"
fi

"$PY" - "$K8S" "$OUT" <<'PY'
import copy, glob, json, os, re, sys, yaml
k8s, out = sys.argv[1], sys.argv[2]
docs = list(yaml.safe_load_all(open(os.path.join(k8s, "base/gateway-deployment.yaml"))))
dep = next(d for d in docs if d["kind"] == "Deployment")

def walk(doc, path):
    parts = [p for p in path.split("/") if p]
    cur = doc
    for p in parts[:-1]:
        cur = cur[int(p)] if isinstance(cur, list) else cur[p]
    return cur, parts[-1]

for name in sorted(os.listdir(os.path.join(k8s, "overlays"))):
    kz = yaml.safe_load(open(os.path.join(k8s, "overlays", name, "kustomization.yaml")))
    assert kz["kind"] == "Kustomization" and kz["resources"] == ["../../base"], name
    d = copy.deepcopy(dep)
    for patch in kz["patches"]:
        t = patch["target"]
        assert (t["kind"], t["name"]) == ("Deployment", "gateway"), f"{name}: unknown target {t}"
        for op in yaml.safe_load(patch["patch"]):
            parent, key = walk(d, op["path"])
            if op["op"] == "replace":
                if isinstance(parent, list):
                    parent[int(key)] = op["value"]
                else:
                    assert key in parent, f"{name}: replace of missing {op['path']}"
                    parent[key] = op["value"]
            elif op["op"] == "add":
                parent[key] = op["value"]
            else:
                raise SystemExit(f"{name}: unsupported op {op['op']}")
    cmd = d["spec"]["template"]["spec"]["containers"][0]["command"][0]
    assert cmd.startswith("/usr/local/bin/gateway-"), f"{name}: command {cmd}"
    with open(os.path.join(out, f"overlay-{name}.yaml"), "w") as f:
        yaml.safe_dump(d, f)

# Strimzi: CRDs have no schema here; check what the gateway config depends on.
res = {d["kind"]: d for d in yaml.safe_load_all(open(os.path.join(k8s, "kafka/strimzi-kafka.yaml"))) if d}
for kind in ("Kafka", "KafkaNodePool", "KafkaTopic"):
    assert kind in res, f"strimzi-kafka.yaml: no {kind}"
    assert res[kind]["apiVersion"] == "kafka.strimzi.io/v1beta2", kind
kafka = res["Kafka"]
cluster, ns = kafka["metadata"]["name"], kafka["metadata"]["namespace"]
assert res["KafkaNodePool"]["metadata"]["labels"]["strimzi.io/cluster"] == cluster
assert any(l["port"] == 9092 and not l["tls"] for l in kafka["spec"]["kafka"]["listeners"])
cfg = next(d for d in yaml.safe_load_all(open(os.path.join(k8s, "base/gateway-config.yaml"))) if d["kind"] == "ConfigMap")
want = f"{cluster}-kafka-bootstrap.{ns}.svc:9092"
assert cfg["data"]["GATEWAY_BROKERS"] == want, f"GATEWAY_BROKERS {cfg['data']['GATEWAY_BROKERS']} != {want}"
# The drain fits in the grace period: preStop sleep + shutdown timeout < grace.
grace = dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
pre = int(dep["spec"]["template"]["spec"]["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][1])
drain = int(cfg["data"]["GATEWAY_SHUTDOWN_TIMEOUT"].rstrip("s"))
assert pre + drain < grace, f"preStop {pre} s + drain {drain} s >= grace {grace} s"
job = yaml.safe_load(open(os.path.join(k8s, "bench/shards-job.yaml")))
spec = job["spec"]
env = {e["name"]: e.get("value") for e in spec["template"]["spec"]["containers"][0]["env"]}
assert spec["completionMode"] == "Indexed"
assert spec["parallelism"] == spec["completions"] == int(env["SHARDS"]), "parallelism, completions and SHARDS differ"
# --- The ConfigMap against the gateways' defaults.
# Set on purpose, with the reason (the ConfigMap's comments say the same).
ON_PURPOSE = {
    "GATEWAY_BROKERS": "the cluster's bootstrap Service (default: an embedded mock cluster)",
    "GATEWAY_THREADS": "the pod's CPU request (default: the node's core count)",
}
def flag_defaults():
    """GATEWAY_<FLAG> -> default, from `--help` (clap) or else the documented table."""
    d = {}
    help_file = os.path.join(out, "gateway-help.txt")
    if os.path.exists(help_file):
        for block in open(help_file).read().split("\n\n"):
            env = re.search(r"\[env: (GATEWAY_[A-Z_]+)=", block)
            if env:
                m = re.search(r"\[default: ([^\]]*)\]", block)
                d[env.group(1)] = m.group(1) if m else None
        return d, "gateway-tokio --help"
    for line in open("docs/wire-contract.md"):
        m = re.match(r"\| `--[a-z-]+[^`]*` \| `(GATEWAY_[A-Z_]+)` \| (.*) \|$", line)
        if m:
            v = re.match(r"`([^`]*)`$", m.group(2).strip())
            d[m.group(1)] = v.group(1) if v else m.group(2).strip()
    return d, "docs/wire-contract.md"
def producer_defaults():
    for f in sorted(glob.glob("common/src/**/*.rs", recursive=True)):
        text = open(f).read()
        m = re.search(r"PRODUCER_DEFAULTS: &\[\(&str, &str\)\] = &\[(.*?)\n\];", text, re.S)
        if m:
            body = "\n".join(l.split("//")[0] for l in m.group(1).splitlines())
            return dict(re.findall(r'\("([^"]+)",\s*"([^"]*)"\)', body)), f
    raise SystemExit("k8s: PRODUCER_DEFAULTS not found in common/src")
flags, flags_src = flag_defaults()
props, props_src = producer_defaults()
assert len(flags) >= 15 and "GATEWAY_LISTEN" in flags, f"k8s: too few defaults parsed from {flags_src}"
assert props.get("linger.ms"), f"k8s: no linger.ms in {props_src}"
bad = []
for key, value in cfg["data"].items():
    if key in ON_PURPOSE:
        continue
    if key.startswith("GATEWAY_X_"):
        prop = key[len("GATEWAY_X_"):].lower().replace("_", ".")
        want, src = props.get(prop), props_src
    else:
        if key not in flags:
            bad.append(f"{key}: no such flag variable in {flags_src}")
            continue
        want, src = flags[key], flags_src
    if want is None:
        bad.append(f"{key}={value!r}: the default is not a value ({src}); add it to ON_PURPOSE with a reason")
    elif str(value) != want:
        bad.append(f"{key}={value!r} but the default is {want!r} ({src})")
assert not bad, "ConfigMap gateway-config differs from the gateways' defaults:\n  " + "\n  ".join(bad)

# --- Hardening of the gateway pods (base and every rendered overlay) and the bench Job.
def hardened(pod, what):
    psc = pod["spec"].get("securityContext", {})
    assert psc.get("runAsNonRoot") is True, f"{what}: pod not runAsNonRoot"
    assert psc.get("seccompProfile", {}).get("type") in ("RuntimeDefault", "Localhost"), f"{what}: seccompProfile {psc.get('seccompProfile')}"
    for c in pod["spec"]["containers"]:
        sc = c.get("securityContext", {})
        assert sc.get("readOnlyRootFilesystem") is True, f"{what}/{c['name']}: root filesystem writable"
        assert sc.get("allowPrivilegeEscalation") is False, f"{what}/{c['name']}: privilege escalation allowed"
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], f"{what}/{c['name']}: capabilities not all dropped"
        assert not sc.get("capabilities", {}).get("add"), f"{what}/{c['name']}: capabilities added"
hardened(dep["spec"]["template"], "base Deployment")
hardened(job["spec"]["template"], "bench Job")
c0 = dep["spec"]["template"]["spec"]["containers"][0]
for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
    assert probe in c0, f"base Deployment: no {probe}"
base_docs = {d["kind"]: d for f in ("gateway-pdb.yaml",) for d in yaml.safe_load_all(open(os.path.join(k8s, "base", f)))}
pdb = base_docs["PodDisruptionBudget"]
labels = dep["spec"]["template"]["metadata"]["labels"]
assert all(labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items()), "PDB selects no gateway pod"
assert pdb["spec"].get("maxUnavailable", 0) < dep["spec"]["replicas"], "PDB allows every replica down"
profile = json.load(open(os.path.join(k8s, "seccomp/io-uring.json")))
allowed = {n for s in profile["syscalls"] if s["action"] == "SCMP_ACT_ALLOW" for n in s["names"]}
assert {"io_uring_setup", "io_uring_enter", "io_uring_register"} <= allowed, "seccomp/io-uring.json lacks io_uring_*"
assert profile["defaultAction"] == "SCMP_ACT_ERRNO", "seccomp/io-uring.json: default is not a denial"
for name in sorted(os.listdir(os.path.join(k8s, "overlays"))):
    d = yaml.safe_load(open(os.path.join(out, f"overlay-{name}.yaml")))
    hardened(d["spec"]["template"], f"overlay {name}")
    sp = d["spec"]["template"]["spec"]["securityContext"]["seccompProfile"]
    cmd = d["spec"]["template"]["spec"]["containers"][0]["command"][0]
    if cmd.endswith(("gateway-uring", "gateway-compio")):
        assert sp == {"type": "Localhost", "localhostProfile": "kafka-ingest/io-uring.json"}, f"overlay {name}: seccompProfile {sp}"
    else:
        assert sp == {"type": "RuntimeDefault"}, f"overlay {name}: seccompProfile {sp}"
for f in glob.glob(os.path.join(k8s, "**/*.yaml"), recursive=True):
    assert "Unconfined" not in open(f).read(), f"{f}: seccomp Unconfined"

# --- ServiceMonitor / PodMonitor (monitoring.coreos.com/v1 CRDs: no schema here).
svc = next(d for d in docs if d["kind"] == "Service")
mons = {d["kind"]: d for f in glob.glob("deploy/observability/k8s/*.yaml") for d in yaml.safe_load_all(open(f)) if d}
for kind in ("ServiceMonitor", "PodMonitor"):
    m = mons.get(kind)
    assert m and m["apiVersion"] == "monitoring.coreos.com/v1", f"deploy/observability/k8s: no {kind} monitoring.coreos.com/v1"
    assert m["spec"]["namespaceSelector"]["matchNames"] == [dep["metadata"]["namespace"]], f"{kind}: namespace"
    sel = m["spec"]["selector"]["matchLabels"]
    target = svc["metadata"]["labels"] if kind == "ServiceMonitor" else labels
    assert all(target.get(k) == v for k, v in sel.items()), f"{kind}: selector {sel} matches nothing"
    eps = m["spec"]["endpoints" if kind == "ServiceMonitor" else "podMetricsEndpoints"]
    ports = [p["name"] for p in (svc["spec"]["ports"] if kind == "ServiceMonitor" else c0["ports"])]
    for ep in eps:
        assert ep["port"] in ports and ep["path"] == "/metrics", f"{kind}: endpoint {ep}"
print(f"k8s: ConfigMap = defaults ({flags_src}, {props_src}) but {', '.join(ON_PURPOSE)}; pods hardened; io_uring overlays on seccomp/io-uring.json; PDB, ServiceMonitor, PodMonitor match")
print(f"k8s: {len(glob.glob(os.path.join(out, 'overlay-*.yaml')))} overlays rendered; Strimzi cluster {cluster}/{ns} matches GATEWAY_BROKERS; drain {pre}+{drain} s < grace {grace} s")
PY

# Plain manifests (kustomization.yaml files are not Kubernetes resources).
files=()
while IFS= read -r f; do files+=("$f"); done < <(find "$K8S/base" "$K8S/bench" -name '*.yaml' ! -name kustomization.yaml | sort)
"$VENV/bin/kubernetes-validate" --strict --quiet "${files[@]}" "$OUT"/*.yaml "$@"
echo "k8s: ${#files[@]} manifests + rendered overlays valid (kubernetes-validate --strict)"
