#!/usr/bin/env bash
# Measures the default processor (issue 3, "Performance") and prints a markdown table:
#   - records/s of a 100- and a 1000-record batch end to end through the real SDK client against the DynamoDB
#     stand-in answering after 5 ms, for the processor and for the sample's one-PutItem-per-record baseline;
#   - CPU per record without I/O (ns/record, allocations);
#   - the size of `bootstrap`, built the way the construct builds it (linux/arm64);
#   - the peak RSS (VmHWM) of a process handling one 1000-record batch of ~1 KB records through lambda.NewHandler;
#   - the cost benchmark (issue 17): each data item's size by DynamoDB's rules for payloads of 100 B to 4 KB, and
#     the cost per million records by component at the prices named in runtime/processor/cost_bench_test.go.
# Usage: scripts/bench.sh            (about a minute; no emulator or network needed)
# Environment: BENCHTIME (default 1s) for the throughput and CPU benchmarks.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
benchtime="${BENCHTIME:-1s}"

echo "== benchmarks (go test -run '^\$' -bench 'BenchmarkBatch|BenchmarkHandleCPU' -benchmem -benchtime $benchtime ./runtime/processor)" >&2
go test -count 1 -timeout 10m -run '^$' -bench '^(BenchmarkBatch|BenchmarkHandleCPU)$' -benchmem -benchtime "$benchtime" \
	./runtime/processor | tee "$tmp/bench.txt" >&2

echo "== peak RSS (go test -run '^\$' -bench '^BenchmarkPeakRSS\$' -benchtime 1x ./runtime/processor)" >&2
go test -count 1 -timeout 5m -run '^$' -bench '^BenchmarkPeakRSS$' -benchtime 1x ./runtime/processor | tee "$tmp/rss.txt" >&2

echo "== cost (go test -v -run '^\$' -bench '^BenchmarkCost\$' -benchtime 1x ./runtime/processor)" >&2
go test -v -count 1 -timeout 5m -run '^$' -bench '^BenchmarkCost$' -benchtime 1x ./runtime/processor >"$tmp/cost.txt"
grep '^BenchmarkCost/.*WCU/record' "$tmp/cost.txt" >&2
# The report is the benchmark's log between its markers, with the log's indentation taken off.
sed -n '/cost report begin/,/cost report end/p' "$tmp/cost.txt" | sed -e 's/^ *//' -e '/cost report begin/d' -e '/cost report end/d' \
	>"$tmp/cost.md"
if ! grep -q '^| sample |' "$tmp/cost.md"; then
	echo "bench.sh: could not read the cost report from the benchmark output" >&2
	cat "$tmp/cost.txt" >&2
	exit 1
fi

echo "== bootstrap (linux/arm64, as the construct builds it: without and with expressions)" >&2
build() { # build OUTPUT TAGS
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 GOARM64=v8.0 GOFLAGS= go build -trimpath -buildvcs=false -tags "$2" \
		-ldflags "-s -w" -o "$1" ./runtime/cmd/processor
}
build "$tmp/bootstrap" lambda.norpc,kdp_noexpr
build "$tmp/bootstrap-expr" lambda.norpc
size_bytes="$(wc -c <"$tmp/bootstrap" | tr -d ' ')"
size_expr_bytes="$(wc -c <"$tmp/bootstrap-expr" | tr -d ' ')"

# metric FILE BENCHMARK-PREFIX UNIT: the value preceding UNIT on the first line of BENCHMARK-PREFIX.
metric() {
	awk -v name="$2" -v unit="$3" 'index($1, name) == 1 { for (i = 3; i <= NF; i++) if ($i == unit) { print $(i-1); exit } }' "$1"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0fx", a / b; else print "n/a" }'; }
round() { awk -v a="$1" 'BEGIN { printf "%.0f", a }'; }

p100="$(metric "$tmp/bench.txt" 'BenchmarkBatch/records=100/impl=processor' records/s)"
b100="$(metric "$tmp/bench.txt" 'BenchmarkBatch/records=100/impl=baseline' records/s)"
p1000="$(metric "$tmp/bench.txt" 'BenchmarkBatch/records=1000/impl=processor' records/s)"
b1000="$(metric "$tmp/bench.txt" 'BenchmarkBatch/records=1000/impl=baseline' records/s)"
nsrec="$(metric "$tmp/bench.txt" 'BenchmarkHandleCPU/db=fake' ns/record)"
allocrec="$(metric "$tmp/bench.txt" 'BenchmarkHandleCPU/db=fake' allocs/record)"
bop="$(metric "$tmp/bench.txt" 'BenchmarkHandleCPU/db=fake' B/op)"
nssdk="$(metric "$tmp/bench.txt" 'BenchmarkHandleCPU/db=sdk-in-memory' ns/record)"
allocsdk="$(metric "$tmp/bench.txt" 'BenchmarkHandleCPU/db=sdk-in-memory' allocs/record)"
peak="$(metric "$tmp/rss.txt" 'BenchmarkPeakRSS' peak-RSS-MiB)"
startup="$(metric "$tmp/rss.txt" 'BenchmarkPeakRSS' startup-RSS-MiB)"
for v in p100 b100 p1000 b1000 nsrec allocrec nssdk peak; do
	if [ -z "${!v}" ]; then
		echo "bench.sh: could not read $v from the benchmark output" >&2
		exit 1
	fi
done

cat <<EOF

Measured on $(go env GOOS)/$(go env GOARCH), $(nproc 2>/dev/null || echo '?') CPUs, $(go version | awk '{print $3}'); stand-in latency 5 ms.

| measure | processor | baseline (one PutItem per record) | ratio |
|---|---|---|---|
| 100-record batch, records/s | $(round "$p100") | $(round "$b100") | $(ratio "$p100" "$b100") |
| 1000-record batch, records/s | $(round "$p1000") | $(round "$b1000") | $(ratio "$p1000" "$b1000") |

| measure | value |
|---|---|
| CPU per record, no I/O (fake DB) | $(round "$nsrec") ns, ${allocrec} allocs, $(awk -v b="$bop" 'BEGIN { printf "%.0f", b / 1000 }') B |
| CPU per record incl. SDK serialization and signing (in-memory HTTP) | $(round "$nssdk") ns, ${allocsdk} allocs |
| \`bootstrap\` size, default configuration (linux/arm64, -trimpath -s -w, tags lambda.norpc,kdp_noexpr) | $(awk -v b="$size_bytes" 'BEGIN { printf "%.1f MB (%d bytes)", b / 1e6, b }') |
| \`bootstrap\` size with expressions or a schema (tags lambda.norpc) | $(awk -v b="$size_expr_bytes" 'BEGIN { printf "%.1f MB (%d bytes)", b / 1e6, b }') |
| peak RSS, one 1000-record batch of ~1 KB records (VmHWM; test binary) | ${peak} MiB (${startup} MiB at start) |

$(cat "$tmp/cost.md")

Reproduce: \`scripts/bench.sh\`
EOF
