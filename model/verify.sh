#!/bin/bash
# verify.sh - model-check gmem's conversion protocol (model/gmem.pml) with spin.
#
# Each run explores every interleaving of its cast (exhaustive search,
# COLLAPSE compression: no state is approximated).  The mutant runs must
# find a counterexample.  Prints one line per run and, at the end,
# "N passed, N failed"; exits non-zero on any failure.
#
#   model/verify.sh [WORKDIR]    (make verify)
set -u
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-$(mktemp -d)}
mkdir -p "$work"
passed=0 failed=0

# name | spin defines | pan build flags | pan run flags | expect: pass, or
# counterexample:WORD (an assertion naming WORD must fail).  The mutant runs
# plain conversions only, so that what breaks first is invariant 2 itself
# (a held pin on a page committed private) rather than the other face of
# the same race (a deferred conversion that saw a pin that was already gone
# and so is never completed), which the full cast finds first.  The
# tracking mutants run the casts of the tracking runs: no-record and
# split-scan lose a write (a page still owed is nowhere a collect looks:
# "written"), take-first misses one that a refault moved from the entry to
# the record while the collect worked (the collect's own check: "owed"),
# no-publish grants a first pin on a page the conversion then makes
# private ("held").  The lazy restore's mutants: map-before-fill maps a
# view's page before its contents are in place ("filled"), guest-no-alloc
# answers a guest's fault on a hole without giving it memory and
# skip-block settles a THP block's pages unfilled after a page a toucher
# got (the guest's fault is not answered: "present").  Post-copy's
# (-DREMOTE) mutants leave a touch waiting for ever: park-late parks a
# view's touch after the receive that would have woken it, abort-run wakes
# only the pages an abort poisons (not a THP fault waiting on the rest of
# its block), forget-nowake has a discard settle a page a guest fault
# waits on without waking it - each an invalid end state (the fault or
# touch waits when everything else has ended).
runs() {
	cat <<-EOF
	pins|-DNOPS=2 -DPINNERS=2 -DTOUCHES=0 -DDISCARDER=0|-DSAFETY|-m100000 -w26|pass
	faults|-DNOPS=2 -DPINNERS=1 -DTOUCHES=2 -DDISCARDER=0|-DSAFETY|-m100000 -w26|pass
	discard|-DNOPS=2 -DPINNERS=1 -DTOUCHES=1 -DDISCARDER=1|-DSAFETY|-m100000 -w26|pass
	converters|-DCONVERTERS=2 -DNOPS=2 -DPINNERS=1 -DTOUCHES=0 -DDISCARDER=0|-DSAFETY|-m100000 -w26|pass
	no-lost-wakeup|-DNOTIMEOUT -DNOSPURIOUS -DNOPS=2 -DPINNERS=2 -DTOUCHES=0 -DDISCARDER=0|-DSAFETY|-m100000 -w26|pass
	liveness|-DLIVENESS -DNOPS=2 -DPINNERS=1 -DTOUCHES=1 -DDISCARDER=0|-DNFAIR=3|-a -f -m100000 -w26|pass
	mutant|-DMUTANT -DPLAIN -DNOPS=2 -DPINNERS=2 -DTOUCHES=0 -DDISCARDER=0|-DSAFETY|-m100000 -w26|counterexample:held
	no-park|-DNOPARK -DNOPS=2 -DPINNERS=1 -DTOUCHES=2 -DDISCARDER=0|-DSAFETY|-m100000 -w26|counterexample:marker
	zap-fails|-DZAPFAIL -DNOPS=2 -DPINNERS=2 -DTOUCHES=0 -DDISCARDER=0|-DSAFETY|-m100000 -w26|pass
	ignore-zap|-DZAPFAIL -DIGNOREZAP -DNOPS=2 -DPINNERS=1 -DTOUCHES=0 -DDISCARDER=0|-DSAFETY|-m100000 -w26|counterexample:pte
	track|-DTRACK -DNOPS=2 -DPINNERS=1 -DTOUCHES=1 -DDISCARDER=0 -DCOLLECTOR=1|-DSAFETY|-m100000 -w26|pass
	track-refault|-DTRACK -DPLAIN -DNOPS=2 -DPINNERS=0 -DTOUCHES=2 -DDISCARDER=1 -DCOLLECTOR=1 -DRECLAIM=1|-DSAFETY|-m100000 -w26|pass
	track-pinned-refault|-DTRACK -DNOPS=1 -DPINNERS=1 -DTOUCHES=1 -DDISCARDER=0 -DCOLLECTOR=1 -DRECLAIM=1|-DSAFETY|-m100000 -w26|pass
	no-record|-DTRACK -DMUTANT_NORECORD -DNOPS=2 -DPINNERS=1 -DTOUCHES=1 -DDISCARDER=0 -DCOLLECTOR=1|-DSAFETY|-m100000 -w26|counterexample:written
	split-scan|-DTRACK -DMUTANT_SPLITSCAN -DNOPS=2 -DPINNERS=1 -DTOUCHES=1 -DDISCARDER=0 -DCOLLECTOR=1|-DSAFETY|-m100000 -w26|counterexample:written
	take-first|-DTRACK -DMUTANT_TAKEFIRST -DPLAIN -DNOPS=2 -DPINNERS=0 -DTOUCHES=2 -DDISCARDER=1 -DCOLLECTOR=1 -DRECLAIM=1|-DSAFETY|-m100000 -w26|counterexample:owed
	no-publish|-DTRACK -DNOPUBLISH -DNOPS=2 -DPINNERS=1 -DTOUCHES=1 -DDISCARDER=0 -DCOLLECTOR=1|-DSAFETY|-m100000 -w26|counterexample:held
	lazy|-DLAZY -DNOPS=2 -DPINNERS=0 -DTOUCHES=1 -DDISCARDER=0 -DGTOUCHES=2|-DSAFETY|-m100000 -w26|pass
	lazy-discard|-DLAZY -DNOPS=1 -DPINNERS=0 -DTOUCHES=1 -DDISCARDER=1 -DGTOUCHES=1|-DSAFETY|-m100000 -w26|pass
	lazy-pin|-DLAZY -DNOPS=1 -DPINNERS=1 -DTOUCHES=0 -DDISCARDER=0 -DGTOUCHES=1|-DSAFETY|-m100000 -w26|pass
	lazy-thp|-DLAZY -DTHP -DNOPS=1 -DPINNERS=0 -DTOUCHES=1 -DDISCARDER=1 -DGTOUCHES=2|-DSAFETY|-m100000 -w26|pass
	lazy-liveness|-DLIVENESS -DLAZY -DNOPS=1 -DPINNERS=0 -DTOUCHES=1 -DDISCARDER=0 -DGTOUCHES=1|-DNFAIR=3|-a -f -m100000 -w26|pass
	map-before-fill|-DLAZY -DMUTANT_MAP_BEFORE_FILL -DNOPS=2 -DPINNERS=0 -DTOUCHES=1 -DDISCARDER=0 -DGTOUCHES=0|-DSAFETY|-m100000 -w26|counterexample:filled
	guest-no-alloc|-DLAZY -DMUTANT_GUEST_NOALLOC -DNOPS=1 -DPINNERS=0 -DTOUCHES=0 -DDISCARDER=0 -DGTOUCHES=2|-DSAFETY|-m100000 -w26|counterexample:present
	skip-block|-DLAZY -DTHP -DMUTANT_SKIP_BLOCK -DNOPS=1 -DPINNERS=0 -DTOUCHES=1 -DDISCARDER=1 -DGTOUCHES=2|-DSAFETY|-m100000 -w26|counterexample:present
	postcopy|-DLAZY -DREMOTE -DABORT -DNOPS=1 -DPINNERS=0 -DTOUCHES=1 -DDISCARDER=0 -DGTOUCHES=2|-DSAFETY|-m100000 -w26|pass
	postcopy-discard|-DLAZY -DREMOTE -DABORT -DNOPS=1 -DPINNERS=0 -DTOUCHES=0 -DDISCARDER=1 -DGTOUCHES=2|-DSAFETY|-m100000 -w26|pass
	postcopy-pin|-DLAZY -DREMOTE -DABORT -DNOPS=1 -DPINNERS=1 -DTOUCHES=0 -DDISCARDER=0 -DGTOUCHES=1|-DSAFETY|-m100000 -w26|pass
	postcopy-thp|-DLAZY -DREMOTE -DTHP -DABORT -DNOPS=1 -DPINNERS=0 -DTOUCHES=0 -DDISCARDER=1 -DGTOUCHES=2|-DSAFETY|-m100000 -w26|pass
	postcopy-thp-view|-DLAZY -DREMOTE -DTHP -DNOPS=1 -DPINNERS=0 -DTOUCHES=1 -DDISCARDER=0 -DGTOUCHES=2|-DSAFETY|-m100000 -w26|pass
	postcopy-liveness|-DLIVENESS -DLAZY -DREMOTE -DNOPS=1 -DPINNERS=0 -DTOUCHES=1 -DDISCARDER=0 -DGTOUCHES=1|-DNFAIR=3|-a -f -m100000 -w26|pass
	park-late|-DLAZY -DREMOTE -DMUTANT_PARK_LATE -DNOPS=1 -DPINNERS=0 -DTOUCHES=1 -DDISCARDER=0 -DGTOUCHES=0|-DSAFETY|-m100000 -w26|counterexample:invalid end state
	abort-run|-DLAZY -DREMOTE -DTHP -DABORT -DMUTANT_ABORT_RUN -DNOPS=1 -DPINNERS=0 -DTOUCHES=0 -DDISCARDER=1 -DGTOUCHES=2|-DSAFETY|-m100000 -w26|counterexample:invalid end state
	forget-nowake|-DLAZY -DREMOTE -DABORT -DMUTANT_FORGET_NOWAKE -DNOPS=1 -DPINNERS=0 -DTOUCHES=0 -DDISCARDER=1 -DGTOUCHES=1|-DSAFETY|-m100000 -w26|counterexample:invalid end state
	EOF
}

check() {
	name=$1 defs=$2 build=$3 flags=$4 expect=$5
	dir=$work/$name
	mkdir -p "$dir"
	cp "$here/gmem.pml" "$dir/"
	start=$(date +%s)
	# shellcheck disable=SC2086
	if ! (cd "$dir" && spin $defs -a gmem.pml >spin.log 2>&1 &&
		${CC:-cc} -w -O2 $build -DCOLLAPSE -DNOBOUNDCHECK -o pan pan.c >cc.log 2>&1); then
		echo "FAIL $name: the model does not build (see $dir)"
		return 1
	fi
	# shellcheck disable=SC2086
	(cd "$dir" && ./pan $flags >pan.log 2>&1)
	secs=$(($(date +%s) - start))
	errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$dir/pan.log")
	states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$dir/pan.log")
	if [ -z "$errors" ]; then
		echo "FAIL $name: pan did not finish (see $dir/pan.log)"
		return 1
	fi
	if [ "$expect" = pass ] && grep -q "Search not completed" "$dir/pan.log"; then
		echo "FAIL $name: search not completed (depth or memory bound; see $dir/pan.log)"
		return 1
	fi
	case $expect in
	pass)
		if [ "$errors" -ne 0 ]; then
			echo "FAIL $name: $(grep -m1 -E 'violated|invalid end|acceptance cycle' "$dir/pan.log")"
			(cd "$dir" && spin $defs -t -p -g gmem.pml >trail.txt 2>&1)
			echo "     counterexample: $dir/trail.txt"
			return 1
		fi
		echo "ok   $name: $states states, every interleaving, ${secs}s"
		;;
	counterexample:*)
		if [ "$errors" -eq 0 ]; then
			echo "FAIL $name: the mutated protocol passed; the model cannot tell it apart"
			return 1
		fi
		if ! grep -m1 -E 'violated|invalid end state' "$dir/pan.log" |
			grep -q "${expect#counterexample:}"; then
			echo "FAIL $name: expected a violation naming ${expect#counterexample:}, got: $(grep -m1 -E 'violated|invalid end state' "$dir/pan.log")"
			return 1
		fi
		(cd "$dir" && spin $defs -t -p -g gmem.pml >trail.txt 2>&1)
		echo "ok   $name: counterexample found as it must be: $(grep -m1 -E 'violated|invalid end state' "$dir/pan.log")"
		echo "     the trail: $dir/trail.txt"
		;;
	esac
	return 0
}

command -v spin >/dev/null || { echo "verify: spin is not installed" >&2; exit 1; }
# one run per CPU at a time; results in the order of the table
jobs=$(nproc 2>/dev/null || echo 1)
runs >"$work/runs"
i=0
while IFS='|' read -r name defs build flags expect; do
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
		wait -n
	done
	i=$((i + 1))
	(check "$name" "$defs" "$build" "$flags" "$expect" >"$work/result.$i" 2>&1
	 echo $? >"$work/status.$i") &
done <"$work/runs"
wait
for n in $(seq 1 "$i"); do
	cat "$work/result.$n"
	if [ "$(cat "$work/status.$n")" = 0 ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
