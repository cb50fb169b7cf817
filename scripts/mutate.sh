#!/bin/sh
# mutate.sh - mutation testing: every mutant of the library must be killed.
#
# Each tests/mutants/*.patch is a one-point change that breaks a promise of
# the library (its first line says which).  For each: a copy of the tree
# (the files git tracks, as they are now), the patch applied, the library
# and its test programs rebuilt, and the test named on the patch's
# "Killed-by:" line run first, then the others until one fails.  A mutant
# that every test passes survives: that fails this script, because the
# suite would not notice the bug it plants.  A patch that no longer
# applies fails it too: the code moved, regenerate the patch.
#
#   scripts/mutate.sh [NAME-SUBSTRING]      (make mutate)
#
# Ends with "N passed, N failed, 0 skipped", a case per mutant.
set -u
cd "$(dirname "$0")/.." || exit 1
work=${MUTATE_DIR:-build-mutate}
only=${1:-}

rm -rf "$work"
mkdir -p "$work/base" || exit 1
git ls-files -z | xargs -0 cp --parents -t "$work/base" || exit 1

# The test programs of the library (gmem-vmm's need KVM and a guest: not here).
tests=$(cd "$work/base" && ls tests/test_*.c | sed -e 's|tests/\(.*\)\.c|\1|' -e '/^test_vmm$/d')
targets=$(for t in $tests; do printf 'build/tests/%s ' "$t"; done)
echo "mutate: building the unmutated tree once"
if ! make -s -C "$work/base" -j2 BUILD=build $targets >"$work/base.log" 2>&1; then
	cat "$work/base.log"
	echo "mutate: the unmutated tree does not build"
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi

passed=0 failed=0
for patch in tests/mutants/*.patch; do
	name=$(basename "$patch" .patch)
	[ -n "$only" ] && case $name in *"$only"*) ;; *) continue ;; esac
	what=$(sed -n 's/^Mutant: \(.*\)\.$/\1/p' "$patch")
	first=$(sed -n 's/^Killed-by: //p' "$patch")
	dir=$work/$name
	t0=$(date +%s)
	# the built base, so that only what the patch touches is rebuilt
	cp -a "$work/base" "$dir"
	if ! patch -s -p1 -d "$dir" <"$patch" >"$dir.log" 2>&1; then
		echo "FAIL $name: the patch no longer applies (regenerate it): $(head -n 3 "$dir.log")"
		failed=$((failed + 1))
		rm -rf "$dir"
		continue
	fi
	if ! make -s -C "$dir" -j2 BUILD=build $targets >>"$dir.log" 2>&1; then
		echo "ok   $name: killed by the build ($what)"
		passed=$((passed + 1))
		rm -rf "$dir"
		continue
	fi
	killer=
	for t in $first $(echo "$tests" | grep -vx "$first"); do
		if ! (cd "$dir" && GMEM_TEST_FIRST_FAIL=1 timeout 300 "build/tests/$t") >>"$dir.log" 2>&1; then
			killer=$t
			break
		fi
	done
	if [ -n "$killer" ]; then
		echo "ok   $name: killed by $killer in $(($(date +%s) - t0)) s ($what)"
		passed=$((passed + 1))
	else
		echo "FAIL $name: survived every test ($what); log: $dir.log"
		failed=$((failed + 1))
		continue # keep the tree to look at
	fi
	rm -rf "$dir"
done
echo "$passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
