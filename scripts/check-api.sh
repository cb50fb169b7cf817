#!/bin/sh
# check-api.sh [LIBRARY...] - the API is named the same everywhere: the
# functions include/gmem.h declares GMEM_API, the names src/libgmem.map
# exports, and the gmem_ globals each library given defines.  A function in
# the header but not the map would be missing from libgmem.so; one in the
# map but not the header, exported without a contract.  One case in the
# test harness's summary line.
root=$(cd "$(dirname "$0")/.." && pwd)
NM=${NM:-nm}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() {
	echo "FAIL check-api: $*"
	echo "# 0 passed, 1 failed, 0 skipped"
	exit 1
}

# The header without comments or directives, one declaration a line
# (perl: Debian's perl-base is always there).
perl -0777 -pe 's{/\*.*?\*/}{ }gs; s{//[^\n]*}{}g; s{^[ \t]*#[^\n]*}{}mg' \
	"$root/include/gmem.h" >"$tmp/h" || fail "cannot read include/gmem.h"
tr '\n' ' ' <"$tmp/h" | tr ';' '\n' >"$tmp/decls"
grep -o 'gmem_[a-z0-9_]* *(' "$tmp/decls" >/dev/null || fail "no functions found in include/gmem.h"
# functions declared without GMEM_API would be hidden in the library
unmarked=$(grep 'gmem_[a-z0-9_]* *(' "$tmp/decls" | grep -v 'GMEM_API' | grep -v 'typedef' |
	grep -o 'gmem_[a-z0-9_]* *(' | tr -d ' (')
[ -z "$unmarked" ] || fail "include/gmem.h declares without GMEM_API:" $unmarked
grep 'GMEM_API' "$tmp/decls" | grep -o 'gmem_[a-z0-9_]* *(' | tr -d ' (' | sort -u >"$tmp/header"

# The map's names: "name;" lines inside its version nodes, no patterns.
sed -n 's/^[[:space:]]*\(gmem_[a-z0-9_]*\);[[:space:]]*$/\1/p' "$root/src/libgmem.map" | sort -u >"$tmp/map"
if grep -v '^[[:space:]]*\*' "$root/src/libgmem.map" | grep -q 'gmem_[a-z0-9_]*\*'; then
	fail "src/libgmem.map exports by pattern; list each function by name"
fi
missing=$(comm -23 "$tmp/header" "$tmp/map")
extra=$(comm -13 "$tmp/header" "$tmp/map")
[ -z "$missing" ] || fail "in include/gmem.h but not src/libgmem.map:" $missing
[ -z "$extra" ] || fail "in src/libgmem.map but not declared GMEM_API in include/gmem.h:" $extra

for lib in "$@"; do
	case $lib in
	*.so*) $NM -D --defined-only "$lib" ;;
	*) $NM -g --defined-only "$lib" ;;
	esac >"$tmp/nm" 2>/dev/null || fail "$NM cannot read $lib"
	awk 'NF == 3 && $3 ~ /^gmem_/ { sub(/@.*/, "", $3); print $3 }' "$tmp/nm" | sort -u >"$tmp/lib"
	missing=$(comm -23 "$tmp/header" "$tmp/lib")
	extra=$(comm -13 "$tmp/header" "$tmp/lib")
	[ -z "$missing" ] || fail "$lib lacks" $missing
	[ -z "$extra" ] || fail "$lib exports what include/gmem.h does not declare:" $extra
done
n=$(wc -l <"$tmp/header")
echo "ok check-api: include/gmem.h, src/libgmem.map${1:+ and $*} name the same $n functions"
echo "# 1 passed, 0 failed, 0 skipped"
