#!/usr/bin/env bash
# Installs the reference peer's dependencies (kafkajs, pinned by package-lock.json) from
# the npm registry into ./node_modules. Needs node >= 14 and npm (Debian: apt-get install
# nodejs npm). Idempotent; takes a few seconds.
set -euo pipefail
cd "$(dirname "$0")"
command -v node >/dev/null && command -v npm >/dev/null || {
    echo "install.sh: node and npm are needed (apt-get install nodejs npm)" >&2
    exit 1
}
if [ -f node_modules/kafkajs/package.json ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
    echo "node-kafkajs peer: already installed"
    exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
echo "node-kafkajs peer: installed ($(node --version), kafkajs $(node -p 'require("kafkajs/package.json").version'))"
