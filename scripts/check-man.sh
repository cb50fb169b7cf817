#!/bin/sh
# check-man.sh - the manual pages in man/ against the library and groff.
#
#  - every function include/gmem.h declares, and every name
#    src/libgmem.map exports, has its page man/NAME.3;
#  - man/gmem.7 refers to every page in man/ of section 3;
#  - every page names itself in .TH and has the sections of its kind;
#    a link page (.so man3/X.3) points at a page that exists;
#  - every page renders with no groff warning (groff -ww) and no line
#    wider than 80 columns;
#  - the code of every example (the .EX blocks under ".SS Program source"
#    in EXAMPLES) is written so that it prints as typed (\- for -, \(aq
#    for ', \e for \) and compiles against include/gmem.h with
#    -Wall -Wextra -Werror.  A page whose function the header does not
#    declare yet is not compiled (a note says so).
#
# One line per problem, then "check-man: ok" or "check-man: FAIL"; the
# exit status is 0 only for ok.  Needs groff and man (make deps installs
# them) and a C compiler ($CC).
set -u
cd "$(dirname "$0")/.." || exit 1

CC=${CC:-cc}
problems=0
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

problem() {
	echo "check-man: $*"
	problems=$((problems + 1))
}

if ! command -v groff >/dev/null 2>&1 || ! command -v man >/dev/null 2>&1; then
	echo "check-man: groff or man not found: make deps installs them"
	echo "check-man: FAIL"
	echo "# 0 passed, 1 failed, 0 skipped"
	exit 1
fi

# The functions the header declares: comments removed, then every
# identifier gmem_* followed by "(" (the callback's typedef has a ")"
# in between and is not one).
awk '
{
	line = $0
	out = ""
	while (line != "") {
		if (incomment) {
			i = index(line, "*/")
			if (!i) { line = ""; break }
			line = substr(line, i + 2)
			incomment = 0
			continue
		}
		i = index(line, "/*")
		j = index(line, "//")
		if (j && (!i || j < i)) { out = out substr(line, 1, j - 1); line = ""; break }
		if (!i) { out = out line; line = ""; break }
		out = out substr(line, 1, i - 1) " "
		line = substr(line, i + 2)
		incomment = 1
	}
	print out
}' include/gmem.h |
	grep -o 'gmem_[a-z0-9_]*[[:space:]]*(' | sed 's/[[:space:]]*($//' | sort -u >"$tmp/declared"

# The names the version script exports by name (not patterns).
if [ -f src/libgmem.map ]; then
	sed -e 's|/\*.*\*/||' -e 's|#.*||' src/libgmem.map |
		grep -o 'gmem_[A-Za-z0-9_]*[[:space:]]*;' | sed 's/[[:space:]]*;$//' |
		sort -u >"$tmp/exported"
else
	: >"$tmp/exported"
fi

if [ ! -s "$tmp/declared" ]; then
	problem "include/gmem.h: no function declarations found"
fi
sort -u "$tmp/declared" "$tmp/exported" >"$tmp/names"
while read -r name; do
	[ -f "man/$name.3" ] || problem "man/$name.3: missing (gmem.h or libgmem.map has $name)"
done <"$tmp/names"

[ -f man/gmem.7 ] || problem "man/gmem.7: missing"

# The pages themselves.
for page in man/*.[37]; do
	[ -f "$page" ] || continue
	base=${page#man/}
	name=${base%.*}
	sect=${base##*.}

	# A link page: one .so line naming another page of man/.
	target=$(sed -n 's|^\.so[[:space:]]*man[0-9]/\(.*\)$|\1|p' "$page")
	if [ -n "$target" ]; then
		[ -f "man/$target" ] || problem "$page: links to man/$target, which does not exist"
		continue
	fi

	if [ "$sect" = 3 ] && [ -f man/gmem.7 ] &&
	   ! grep -q "^\.BR $name (3)" man/gmem.7; then
		problem "man/gmem.7: does not refer to $name(3)"
	fi

	th=$(sed -n 's/^\.TH[[:space:]]\{1,\}\([^[:space:]]*\)[[:space:]]\{1,\}\([^[:space:]]*\).*/\1 \2/p' "$page")
	[ "$th" = "$name $sect" ] || problem "$page: .TH says \"$th\", not \"$name $sect\""
	if [ "$sect" = 3 ]; then
		sections="NAME LIBRARY SYNOPSIS DESCRIPTION RETURN.VALUE ERRORS SEE.ALSO"
	else
		sections="NAME DESCRIPTION SEE.ALSO"
	fi
	for s in $sections; do
		grep -q "^\.SH \"*$s\"*\$" "$page" || problem "$page: no section $(echo "$s" | tr . ' ')"
	done

	# groff's own warnings, every kind of them.
	if ! groff -man -ww -z -Tutf8 "$page" >"$tmp/out" 2>&1 || [ -s "$tmp/out" ]; then
		while IFS= read -r line; do
			problem "$page: $line"
		done <"$tmp/out"
		[ -s "$tmp/out" ] || problem "$page: groff failed"
	fi

	# What man(1) says, if it is here (it reads pages as a user would).
	if command -v man >/dev/null 2>&1; then
		MANWIDTH=80 man --warnings -l -Tutf8 "$page" 2>&1 >/dev/null |
			while IFS= read -r line; do
				echo "$page: $line"
			done >"$tmp/out"
		while IFS= read -r line; do
			problem "$line"
		done <"$tmp/out"
	fi

	# What a reader sees on an 80-column terminal (the title line aside).
	groff -man -Tutf8 -rLL=78n -P-cbou "$page" 2>/dev/null |
		awk -v page="$page" 'NR > 1 && length($0) > 80 {
			printf "%s: rendered line %d is %d columns wide\n", page, NR, length($0)
		}' >"$tmp/out"
	while IFS= read -r line; do
		problem "$line"
	done <"$tmp/out"

	# Example blocks: escapes checked everywhere, program source
	# unescaped into a C file.
	awk -v page="$page" -v src="$tmp/$name.c" '
	function unescape(s, lineno,    out, c, n) {
		out = ""
		while (s != "") {
			c = substr(s, 1, 1)
			if (c != "\\") {
				if (c == "-" || c == "\047" || c == "`")
					printf "%s:%d: \"%s\" in an example prints as another character: write it escaped\n", page, lineno, c
				out = out c
				s = substr(s, 2)
				continue
			}
			n = substr(s, 2, 1)
			if (n == "e") { out = out "\\"; s = substr(s, 3) }
			else if (n == "-") { out = out "-"; s = substr(s, 3) }
			else if (n == "&") { s = substr(s, 3) }
			else if (substr(s, 2, 3) == "(aq") { out = out "\047"; s = substr(s, 5) }
			else if (substr(s, 2, 3) == "(ga") { out = out "`"; s = substr(s, 5) }
			else if (substr(s, 2, 3) == "(ti") { out = out "~"; s = substr(s, 5) }
			else if (substr(s, 2, 3) == "(ha") { out = out "^"; s = substr(s, 5) }
			else if (!program && n == "f") { s = substr(s, 4) }
			else {
				printf "%s:%d: escape \"\\%s\" in an example\n", page, lineno, n
				s = substr(s, 3)
			}
		}
		return out
	}
	/^\.SH/ { examples = ($0 ~ /^\.SH "?EXAMPLES"?$/); program = 0 }
	/^\.SS/ { program = examples && ($0 ~ /^\.SS "?Program source"?$/) }
	/^\.EX/ { inex = 1; next }
	/^\.EE/ { inex = 0; next }
	inex {
		code = unescape($0, NR)
		if (program) { print code > src; found = 1 }
	}
	END { if (found) close(src) }
	' "$page" >"$tmp/out"
	while IFS= read -r line; do
		problem "$line"
	done <"$tmp/out"

	if [ -f "$tmp/$name.c" ]; then
		if [ "$sect" = 3 ] && ! grep -qx "$name" "$tmp/declared"; then
			echo "check-man: note: $page: example not compiled: include/gmem.h does not declare $name"
		elif ! command -v "$CC" >/dev/null 2>&1; then
			problem "$page: no C compiler ($CC) to compile the example"
		elif ! "$CC" -std=gnu11 -Wall -Wextra -Werror -fsyntax-only -Iinclude \
			"$tmp/$name.c" >"$tmp/out" 2>&1; then
			problem "$page: the example does not compile:"
			sed -e "s|$tmp/||g" -e "s|^|    |" "$tmp/out"
		fi
	fi
done

if [ "$problems" -eq 0 ]; then
	echo "check-man: ok"
	echo "# 1 passed, 0 failed, 0 skipped"
	exit 0
fi
echo "check-man: FAIL ($problems problems)"
echo "# 0 passed, 1 failed, 0 skipped"
exit 1
