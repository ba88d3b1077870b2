#!/usr/bin/env bash
# check-file-length.sh ROOT: every .rs file under ROOT/common and ROOT/bench-client/src
# longer than 800 lines must start with a one-line reason, `// long-file: <reason>`.
# Lists the offenders with their line counts; exit 1 if there is any.
set -euo pipefail

LIMIT=800
root=${1:?usage: check-file-length.sh ROOT}
offenders=0
checked=0

while IFS= read -r -d '' file; do
    checked=$((checked + 1))
    lines=$(wc -l <"$file")
    # a last line without a newline still counts
    if [ -s "$file" ] && [ "$(tail -c 1 "$file" | od -An -c | tr -d ' ')" != '\n' ]; then
        lines=$((lines + 1))
    fi
    [ "$lines" -le "$LIMIT" ] && continue
    first=$(head -n 1 "$file")
    if [[ "$first" =~ ^//\ long-file:\ *[^[:space:]] ]]; then
        continue
    fi
    echo "${file#"$root"/}: $lines lines (over $LIMIT, no '// long-file: <reason>' first line)"
    offenders=$((offenders + 1))
done < <(find "$root/common" "$root/bench-client/src" -path '*/target' -prune -o -name '*.rs' -type f -print0 | sort -z)

if [ "$offenders" -gt 0 ]; then
    echo "$offenders file(s) over $LIMIT lines without a long-file reason"
    exit 1
fi
echo "no file over $LIMIT lines without a reason ($checked files)"
