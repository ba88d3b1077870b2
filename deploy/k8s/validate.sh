#!/usr/bin/env bash
# Offline validation of deploy/k8s (CI runs it from .ci/run):
#  * every plain manifest (base/, bench/) against the Kubernetes OpenAPI schemas with
#    kubernetes-validate --strict (unknown fields are errors);
#  * every overlay rendered (its JSON patches applied to the base Deployment, as
#    `kubectl kustomize` would) and validated the same way;
#  * the Strimzi resources (CRDs, no schema in kubernetes-validate): parsed, and checked for
#    the fields the gateway config relies on (cluster name, plain listener on 9092, node pool).
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

"$PY" - "$K8S" "$OUT" <<'PY'
import copy, json, os, sys, yaml
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
print(f"k8s: {len(os.listdir(out))} overlays rendered; Strimzi cluster {cluster}/{ns} matches GATEWAY_BROKERS; drain {pre}+{drain} s < grace {grace} s")
PY

# Plain manifests (kustomization.yaml files are not Kubernetes resources).
files=()
while IFS= read -r f; do files+=("$f"); done < <(find "$K8S/base" "$K8S/bench" -name '*.yaml' ! -name kustomization.yaml | sort)
"$VENV/bin/kubernetes-validate" --strict --quiet "${files[@]}" "$OUT"/*.yaml "$@"
echo "k8s: ${#files[@]} manifests + rendered overlays valid (kubernetes-validate --strict)"
