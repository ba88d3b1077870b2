#!/usr/bin/env bash
# Re-renders every committed compare (summary.json) and stall-lab (stall-lab.json) result
# into a temporary directory and diffs the rendered files against the committed ones:
# a change that alters a report's bytes fails here. `bench-client report DIR` is the
# renderer; pass the binary as $1 (default target/debug/bench-client).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/debug/bench-client}"
[ -x "$bin" ] || { echo "check-rerender: $bin not built" >&2; exit 2; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# Results this bench-client cannot re-render byte for byte, each with the reason; every
# other committed result must re-render to the committed bytes.
declare -A skip=(
  [results/2026-11-25-2c-vm]="summary.json predates the scenario schema (scenarios had a 'shape', no 'offer')"
  [results/2026-11-25-stall-lab]="rendered before the causes' descriptions changed (its backlog burst was 2000 connects; the renderer now describes 1000)"
)
checked=0
failed=0
for src in results/*/summary.json results/*/stall-lab.json results/archive/*/summary.json results/archive/*/stall-lab.json; do
  [ -f "$src" ] || continue
  dir="$(dirname "$src")"
  if [ -n "${skip[$dir]:-}" ]; then
    echo "skipped $dir: ${skip[$dir]}"
    continue
  fi
  out="$tmp/$(echo "$dir" | tr / _)"
  mkdir -p "$out"
  cp "$src" "$out/"
  if ! "$bin" report "$out" >/dev/null 2>"$out.err"; then
    echo "FAIL $dir: bench-client report failed: $(tail -1 "$out.err")"
    failed=$((failed + 1))
    continue
  fi
  for f in "$out"/*; do
    name="$(basename "$f")"
    [ "$name" = "$(basename "$src")" ] && continue
    if [ ! -f "$dir/$name" ]; then
      echo "FAIL $dir: re-render wrote $name, which is not committed"
      failed=$((failed + 1))
    elif ! cmp -s "$f" "$dir/$name"; then
      echo "FAIL $dir/$name differs from its re-render:"
      diff "$dir/$name" "$f" | head -20 || true
      failed=$((failed + 1))
    fi
  done
  checked=$((checked + 1))
done
echo "re-rendered $checked committed results, $failed differences"
[ "$failed" -eq 0 ]
