#!/usr/bin/env bash
# The io_uring gateways under the seccomp profile the uring/compio overlays ship
# (seccomp/io-uring.json), loaded through libseccomp as a container runtime loads a
# `Localhost` profile (CI runs it from .ci/run):
#  1. negative control: the same profile without the io_uring_* entries must stop
#     gateway-uring and `gateway-compio --require-io-uring` from starting (proves the filter
#     is applied and that io_uring is what the extra entries are for);
#  2. the uring and compio conformance cases (conformance/tests/conformance.rs) with both
#     gateways wrapped in the profile (compio with --require-io-uring, so it cannot fall back
#     to epoll): a syscall the profile lacks fails a case.
# Needs the workspace binaries and tests built (cargo build --workspace --bins; cargo test
# builds the conformance test executable) and Debian's python3-seccomp (installed if
# missing; run by /usr/bin/python3, not a pyenv/venv python).
# Usage: deploy/k8s/seccomp-check.sh [extra args for the conformance test executable]
# Env: BIN_DIR (default target/debug), SECCOMP_WORK (scratch, default target/seccomp-check,
# removed at exit), CONFORMANCE_TEST (the test executable; default: asked
# from cargo, without building).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
PROFILE="$ROOT/deploy/k8s/seccomp/io-uring.json"
LOADER="$ROOT/deploy/k8s/seccomp/seccomp-exec.py"
BIN_DIR=$(cd "${BIN_DIR:-target/debug}" && pwd)
PY=/usr/bin/python3
start=$(date +%s)

if ! "$PY" -c 'import seccomp' 2>/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-seccomp
fi

if [ -z "${CONFORMANCE_TEST:-}" ]; then
  CONFORMANCE_TEST=$(cargo test -p conformance --test conformance --no-run --message-format=json 2>/dev/null \
    | "$PY" -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "conformance" and "test" in m["target"]["kind"] and m.get("executable"):
        print(m["executable"])')
fi
[ -x "$CONFORMANCE_TEST" ] || { echo "seccomp-check: no conformance test executable ($CONFORMANCE_TEST)" >&2; exit 1; }

# The test executable finds the gateways one directory above its own (conformance::bin_dir,
# from /proc/self/exe: a symlink would not do, so a copy), next to wrappers that exec the
# real binaries under the profile (same PID: the tests' signals reach the gateway).
WORK="${SECCOMP_WORK:-target/seccomp-check}"
rm -rf "$WORK" && mkdir -p "$WORK/debug/deps"
WORK=$(cd "$WORK" && pwd)
trap 'rm -rf "$WORK"' EXIT
cp "$CONFORMANCE_TEST" "$WORK/debug/deps/"
for b in "$BIN_DIR"/*; do
  [ -f "$b" ] && [ -x "$b" ] && ln -s "$b" "$WORK/debug/$(basename "$b")"
done
wrap() { # wrap NAME PROFILE [FIXED ARGS...]
  local name=$1 profile=$2; shift 2
  rm -f "$WORK/debug/$name"
  printf '#!/bin/sh\nexec %s %s %s %s %s "$@"\n' "$PY" "$LOADER" "$profile" "$BIN_DIR/$name" "$*" \
    > "$WORK/debug/$name"
  chmod +x "$WORK/debug/$name"
}

# 1. Negative control.
"$PY" - "$PROFILE" "$WORK/no-io-uring.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
before = sum(len(s["names"]) for s in p["syscalls"])
for s in p["syscalls"]:
    s["names"] = [n for n in s["names"] if not n.startswith("io_uring_")]
assert before - sum(len(s["names"]) for s in p["syscalls"]) == 3, "io_uring_setup/enter/register not all in the profile"
json.dump(p, open(sys.argv[2], "w"))
PY
refuses() { # refuses NAME [ARGS...]: must exit with EPERM from io_uring setup
  local out rc
  set +e
  out=$(timeout 10 "$PY" "$LOADER" "$WORK/no-io-uring.json" "$BIN_DIR/$1" "${@:2}" \
    --listen 127.0.0.1:0 --sink null --threads 1 2>&1)
  rc=$?
  set -e
  if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ] || ! grep -q "Operation not permitted" <<<"$out"; then
    echo "seccomp-check: $1 started (rc $rc) without io_uring_* in the profile:" >&2
    echo "$out" | tail -5 >&2
    exit 1
  fi
}
refuses gateway-uring
refuses gateway-compio --require-io-uring
echo "seccomp: without io_uring_* both io_uring gateways refuse to start (EPERM), as expected"

# 2. The conformance cases of both io_uring gateways under the shipped profile.
wrap gateway-uring "$PROFILE"
wrap gateway-compio "$PROFILE" --require-io-uring
exe="$WORK/debug/deps/$(basename "$CONFORMANCE_TEST")"
set +e
"$exe" uring:: compio:: "$@" > "$WORK/conformance.log" 2>&1
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
  tail -n 200 "$WORK/conformance.log"
  echo "seccomp-check: conformance cases failed under $PROFILE" >&2
  exit "$rc"
fi
grep -E "^test result:" "$WORK/conformance.log"
echo "seccomp: uring + compio conformance cases pass under deploy/k8s/seccomp/io-uring.json ($(( $(date +%s) - start )) s)"
