#!/bin/sh
# model_refs.sh - the model names the C it stands for; check that it still does.
#
# Every "C: FILE FUNCTION() FIRST-LAST" in model/*.pml must name a function
# defined in FILE whose definition spans lines FIRST..LAST.  When code moves,
# this fails and says where the function is now: look at the model, then
# update the reference.  One case in the harness's summary line.
cd "$(dirname "$0")/.." || exit 1
passed=0 failed=0
refs=$(grep -ho 'C: [^ ]* [A-Za-z_][A-Za-z_0-9]*() [0-9]*-[0-9]*' model/*.pml | sort -u)
if [ -z "$refs" ]; then
	echo "FAIL model_refs: no references found in model/*.pml"
	echo "# 0 passed, 1 failed, 0 skipped"
	exit 1
fi
while read -r _ file func range; do
	func=${func%()}
	first=${range%-*} last=${range#*-}
	# the definition: the name at a line's start or after its type, not a
	# declaration (ends in ";"); the body ends at the first "}" in column 0
	span=$(awk -v f="$func" '
		start == 0 && $0 ~ "^[A-Za-z].*[ *]" f "\\(" && $0 !~ /;[ \t]*$/ { start = NR }
		start == 0 && $0 ~ "^" f "\\(" && $0 !~ /;[ \t]*$/ { start = NR }
		start && /^}/ { print start "-" NR; exit }' "$file" 2>/dev/null)
	if [ -z "$span" ]; then
		echo "FAIL model_refs: $func() is not defined in $file (the model refers to it)"
		failed=$((failed + 1))
		continue
	fi
	s=${span%-*} e=${span#*-}
	if [ "$first" -lt "$s" ] || [ "$last" -gt "$e" ] || [ "$first" -gt "$last" ]; then
		echo "FAIL model_refs: $file $func() is lines $s-$e now; the model says $first-$last"
		failed=$((failed + 1))
		continue
	fi
	passed=$((passed + 1))
done <<EOF
$refs
EOF
if [ "$failed" -eq 0 ]; then
	echo "ok model_refs: all $passed references from the model to the C hold"
	echo "# 1 passed, 0 failed, 0 skipped"
else
	echo "# 0 passed, 1 failed, 0 skipped"
	exit 1
fi
