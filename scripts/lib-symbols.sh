#!/bin/sh
# lib-symbols.sh [LIBRARY...] - fail when a library defines a global symbol
# outside the gmem_ namespace.  A static link drags every global of
# libgmem.a into the program's namespace, and the shared library's are
# interposable: anything unprefixed could collide with the program's own.
# Default: build/lib/libgmem.a and build/lib/libgmem.so.  One case in the
# test harness's summary line.
NM=${NM:-nm}
[ $# -gt 0 ] || set -- build/lib/libgmem.a build/lib/libgmem.so
bad= checked=
for lib in "$@"; do
	if [ ! -e "$lib" ]; then
		echo "FAIL lib-symbols: $lib does not exist"
		bad=1
		continue
	fi
	case $lib in
	*.so*) syms=$($NM -D --defined-only "$lib") ;;
	*) syms=$($NM -g --defined-only "$lib") ;;
	esac || { echo "FAIL lib-symbols: $NM cannot read $lib"; bad=1; continue; }
	# "ADDRESS TYPE NAME[@VERSION]"; a version node is an absolute symbol
	others=$(printf '%s\n' "$syms" | awk 'NF == 3 && !($2 == "A" && $3 ~ /^GMEM_[0-9.]+$/) {
		sub(/@.*/, "", $3); if ($3 !~ /^gmem_/) print $3 }' | sort -u)
	if [ -n "$others" ]; then
		echo "FAIL lib-symbols: $lib defines globals outside gmem_:" $others
		bad=1
	fi
	checked="$checked ${lib##*/}"
done
if [ -n "$bad" ]; then
	echo "# 0 passed, 1 failed, 0 skipped"
	exit 1
fi
echo "ok lib-symbols: every global symbol defined in$checked starts with gmem_"
echo "# 1 passed, 0 failed, 0 skipped"
