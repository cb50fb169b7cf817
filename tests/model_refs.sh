#!/bin/sh
# model_refs.sh - the model names the C it stands for; check that it still does.
#
# Every "C: FILE FUNCTION() #HASH" in model/*.pml names a function defined in
# FILE and a hash of its body as the model was last checked against it: the
# first 8 hex digits of the SHA-256 of the definition with its comments and
# white space taken out.  So moving code, reflowing it or rewording its
# comments changes nothing, and any change to what the function does fails
# here until someone has read the model against the new code and recorded
# the new hash:
#
#	tests/model_refs.sh --update	rewrite the hashes (after that reading)
#
# One case in the harness's summary line.
cd "$(dirname "$0")/.." || exit 1
update=false
[ "${1:-}" = "--update" ] && update=true

# The hash of FUNC's definition in FILE, or nothing if it has none: the
# name at a line's start or after its type, not a declaration (ends in
# ";"); the body ends at the first "}" in column 0.
body_hash() {
	awk -v f="$2" '
		start == 0 && $0 ~ "^[A-Za-z].*[ *]" f "\\(" && $0 !~ /;[ \t]*$/ { start = NR }
		start == 0 && $0 ~ "^" f "\\(" && $0 !~ /;[ \t]*$/ { start = NR }
		start { print }
		start && /^}/ { exit }' "$1" 2>/dev/null |
		perl -0777 -pe 's{/\*.*?\*/}{}gs; s{//[^\n]*}{}g; s{\s+}{}g' |
		{ read -r code; [ -n "$code" ] && printf '%s' "$code" | sha256sum | cut -c1-8; }
}

passed=0 failed=0
refs=$(grep -ho 'C: [^ ]* [A-Za-z_][A-Za-z_0-9]*() #[0-9a-f]*' model/*.pml | sort -u)
if [ -z "$refs" ]; then
	echo "FAIL model_refs: no references found in model/*.pml"
	echo "# 0 passed, 1 failed, 0 skipped"
	exit 1
fi
while read -r _ file func hash; do
	name=${func%()}
	now=$(body_hash "$file" "$name")
	if [ -z "$now" ]; then
		echo "FAIL model_refs: $name() is not defined in $file (the model refers to it)"
		failed=$((failed + 1))
		continue
	fi
	if [ "#$now" != "$hash" ]; then
		if $update; then
			sed -i "s|C: $file $func $hash|C: $file $func #$now|g" model/*.pml
			echo "updated: $file $func $hash -> #$now"
		else
			echo "FAIL model_refs: $file $func changed since the model was checked against it" \
				"(hash #$now, the model says $hash): read the model against it, then" \
				"tests/model_refs.sh --update"
			failed=$((failed + 1))
			continue
		fi
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
