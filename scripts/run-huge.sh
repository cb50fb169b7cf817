#!/bin/sh
# run-huge.sh - gmem-vmm's built-in demo on huge-page backings.
#
#   scripts/run-huge.sh VMM [BACKING...]     (default: thp hugetlb-2m hugetlb-1g)
#
# Each backing runs the demo once (extra gmem-vmm options in $VMM_ARGS).
# gmem-vmm never changes the kernel's settings; this script does, for the
# run only: for hugetlb-* it raises nr_hugepages by the pages the pool
# lacks for the demo's RAM and takes them back afterwards (by what it
# added, so that a change someone else made meanwhile stays); for thp it
# sets shmem_enabled to "advise" if shmem huge pages are off, and puts the
# old value back.  A backing it cannot prepare (not root, a kernel without
# the pool, memory too fragmented for the pages) is reported SKIP with the
# reason.  Exits non-zero if a demo failed.
set -u

vmm=${1:?usage: run-huge.sh VMM [BACKING...]}
shift
[ $# -gt 0 ] || set -- thp hugetlb-2m hugetlb-1g

THP=/sys/kernel/mm/transparent_hugepage
restore=""   # shell commands that put back what was changed, newest first
results=""
failed=0

undo() {
	[ -n "$restore" ] && eval "$restore"
	restore=""
}
trap undo EXIT
trap 'undo; exit 130' INT TERM

# The [chosen] word of a sysfs choice file, or its first line.
choice() {
	sed -n '1{s/.*\[\(.*\)\].*/\1/;p}' "$1" 2>/dev/null
}

# Make shmem huge pages available; if it cannot, sets why and fails.
prepare_thp() {
	file=$THP/shmem_enabled
	per=$THP/hugepages-2048kB/shmem_enabled
	# Linux 6.11+: the per-size file decides unless it says "inherit"
	if [ -r "$per" ] && [ "$(choice "$per")" != inherit ]; then
		file=$per
	fi
	mode=$(choice "$file")
	case $mode in
	always | within_size | advise | force) return 0 ;;
	"") why="cannot read $file"; return 1 ;;
	esac
	if [ "$(id -u)" != 0 ]; then
		why="$file says $mode, and not root to set it to advise"
		return 1
	fi
	echo advise >"$file" 2>/dev/null || { why="cannot write $file"; return 1; }
	restore="echo $mode >$file; $restore"
	return 0
}

# Make `pages` pages of `kb` kB free in the pool; if it cannot, sets why and fails.
prepare_hugetlb() {
	kb=$1 pages=$2
	dir=/sys/kernel/mm/hugepages/hugepages-${kb}kB
	[ -d "$dir" ] || { why="this kernel has no pool of ${kb} kB pages ($dir)"; return 1; }
	have=$(($(cat "$dir/free_hugepages") - $(cat "$dir/resv_hugepages")))
	[ "$have" -ge "$pages" ] && return 0
	if [ "$(id -u)" != 0 ]; then
		why="$pages free ${kb} kB pages needed, $have free, and not root to raise $dir/nr_hugepages"
		return 1
	fi
	old=$(cat "$dir/nr_hugepages")
	echo $((old + pages - have)) >"$dir/nr_hugepages" 2>/dev/null
	added=$(($(cat "$dir/nr_hugepages") - old)) # what the kernel gave, maybe less
	[ "$added" -gt 0 ] &&
		restore="echo \$((\$(cat $dir/nr_hugepages) - $added)) >$dir/nr_hugepages; $restore"
	have=$(($(cat "$dir/free_hugepages") - $(cat "$dir/resv_hugepages")))
	if [ "$have" -lt "$pages" ]; then
		why="$pages free ${kb} kB pages needed, the kernel gave $have (memory too fragmented?)"
		return 1
	fi
	return 0
}

for backing in "$@"; do
	why=""
	case $backing in
	thp) mem=256M; prepare_thp ;;
	hugetlb-2m) mem=256M; prepare_hugetlb 2048 128 ;;
	hugetlb-1g) mem=1G; prepare_hugetlb 1048576 1 ;;
	shmem) mem=256M; true ;;
	*) echo "run-huge.sh: unknown backing $backing" >&2; exit 2 ;;
	esac
	status=$?
	echo "== gmem-vmm --backing $backing --mem $mem${VMM_ARGS:+ $VMM_ARGS}"
	if [ $status -ne 0 ]; then
		undo
		echo "SKIP $backing: $why"
		results="$results $backing:SKIP"
		continue
	fi
	# shellcheck disable=SC2086
	"$vmm" --backing "$backing" --mem "$mem" ${VMM_ARGS:-}
	status=$?
	undo
	if [ $status -eq 0 ]; then
		results="$results $backing:ok"
	else
		echo "FAIL $backing: gmem-vmm exited $status"
		results="$results $backing:FAIL"
		failed=1
	fi
done
echo "== run-huge:$results"
exit $failed
