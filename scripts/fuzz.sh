#!/usr/bin/env bash
# fuzz.sh GO FUZZTIME FUZZER PACKAGE: run one fuzzer of PACKAGE for FUZZTIME
# (go test -fuzz). A run that fails only with "context deadline exceeded" at
# the end of FUZZTIME, having written no failing input under
# PACKAGE/testdata/fuzz/FUZZER, is Go's own race (go.dev/issue/75804: the
# coordinator reports its own deadline as the target's failure, fixed in Go
# 1.27): it is said and run once more. Any other failure fails.
set -uo pipefail
go=$1 fuzztime=$2 fuzzer=$3 pkg=$4
corpus="$pkg/testdata/fuzz/$fuzzer"
for attempt in 1 2; do
	before=$(ls "$corpus" 2>/dev/null | sort)
	out=$(mktemp)
	"$go" test -run='^$' -fuzz="^$fuzzer\$" -fuzztime="$fuzztime" "$pkg" 2>&1 | tee "$out"
	status=${PIPESTATUS[0]}
	after=$(ls "$corpus" 2>/dev/null | sort)
	if [ "$status" -eq 0 ]; then
		rm -f "$out"
		exit 0
	fi
	if [ "$before" = "$after" ] && grep -q '^    context deadline exceeded$' "$out" &&
		! grep -q -e '^panic:' -e 'Failing input written' -e '--- FAIL: .*\(.*\)$' <(grep -v "^--- FAIL: $fuzzer " "$out"); then
		rm -f "$out"
		echo "fuzz.sh: $fuzzer: Go's fuzz coordinator reported its own deadline (go.dev/issue/75804), no failing input: run again ($attempt)"
		continue
	fi
	rm -f "$out"
	exit "$status"
done
echo "fuzz.sh: $fuzzer: the deadline race twice in a row"
exit 1
