#!/bin/sh
# ensure-packages.sh PKG... - install the Debian packages not yet installed.
# Only make's deps* targets call this (make deps, deps-bench, ...), so that
# installing is a step of its own; it needs root for apt-get.
missing=
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
	echo "ensure-packages: need root to install:$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq && apt-get install -y -qq $missing >/dev/null
