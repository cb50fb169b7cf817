#!/bin/sh
# run.sh - run the test programs given and add up their results.
# Ends with "N passed, N failed, N skipped"; exits non-zero on any failure.
passed=0 failed=0 skipped=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in "$@"; do
	# a test is a program and its arguments, in one word
	set -- $t
	name=${1##*/}
	echo "== $name"
	"$@" >"$log" 2>&1 &
	pid=$!
	tail -n +1 -f --pid=$pid "$log"
	wait $pid
	status=$?
	sum=$(sed -n 's/^# \([0-9]*\) passed, \([0-9]*\) failed, \([0-9]*\) skipped$/\1 \2 \3/p' "$log" | tail -n 1)
	if [ -z "$sum" ]; then
		echo "FAIL $name: exited $status without a summary"
		failed=$((failed + 1))
		continue
	fi
	read -r p f s <<-END
	$sum
	END
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
