#!/usr/bin/env bash
# Runs the end-to-end tier (build tag e2e) and prints its figures as the README's reliability table (markdown).
# Needs Go, Node.js and `npm ci` done (the e2e tests start kinesalite and dynalite from node_modules on 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."

figures="$(mktemp)"
trap 'rm -f "$figures"' EXIT
E2E_FIGURES="$figures" go test -tags e2e -count=1 -timeout 10m ./internal/e2e >&2

echo "| scenario | records | faults injected | lost | duplicated |"
echo "|---|---:|---:|---:|---:|"
node -e '
const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean);
for (const l of lines) {
  const f = JSON.parse(l);
  console.log(`| ${f.test} | ${f.records.toLocaleString("en-US")} | ${f.faultsInjected.toLocaleString("en-US")} | ${f.lost} | ${f.duplicated} |`);
}' "$figures"
