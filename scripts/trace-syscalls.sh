#!/bin/sh
# SPDX-License-Identifier: MIT
#
# trace-syscalls.sh - which system calls libgmem's threads make.
#
# Builds scripts/trace-syscalls.c against build/lib/libgmem.a, runs it under
#   strace -f -qq -e trace=all
# and prints, for the library's threads ("gmem-fault", "gmem-uffd") and for
# the calling thread, each system call with the ioctl requests, madvise
# advice, mprotect protections, futex operations and files it used, and the
# errors it got.  docs/INTEGRATION.md quotes a run.  Needs strace and
# (for the THP step) shmem huge pages, which it allows for the run if it
# may and puts back after.
#
# usage: scripts/trace-syscalls.sh [RAW-TRACE-FILE]
set -eu

cd "$(dirname "$0")/.."
out=${1:-build/trace-syscalls.strace}
bin=build/trace-syscalls
thp=/sys/kernel/mm/transparent_hugepage/shmem_enabled

command -v strace >/dev/null || scripts/ensure-packages.sh strace
make --no-print-directory -s build/lib/libgmem.a
${CC:-cc} -std=gnu11 -Wall -Wextra -Werror -O2 -g -Iinclude -pthread \
	scripts/trace-syscalls.c build/lib/libgmem.a -o "$bin"

old_thp=
if [ -w "$thp" ] && grep -q '\[never\]\|\[deny\]' "$thp"; then
	old_thp=$(sed 's/.*\[\(.*\)\].*/\1/' "$thp")
	echo advise >"$thp"
fi
status=0
strace -f -qq -e trace=all -o "$out" "$bin" || status=$?
[ -n "$old_thp" ] && echo "$old_thp" >"$thp"
[ "$status" = 0 ] || { echo "trace-syscalls: the program failed ($status)" >&2; exit 1; }

python3 - "$out" <<'EOF'
import re, sys
from collections import defaultdict

# strace 6.1 prints these raw: newer than its tables
IOC_AA = {0x2: "UFFDIO_WAKE", 0x3: "UFFDIO_COPY", 0x5: "UFFDIO_MOVE", 0x7: "UFFDIO_CONTINUE",
          0x8: "UFFDIO_POISON", 0x3f: "UFFDIO_API", 0x0: "UFFDIO_REGISTER/USERFAULTFD_IOC_NEW"}
MADV = {0x17: "MADV_POPULATE_WRITE", 0x18: "MADV_DONTNEED_LOCKED", 0x19: "MADV_COLLAPSE",
        0x66: "MADV_GUARD_INSTALL", 0x67: "MADV_GUARD_REMOVE"}

line_re = re.compile(r'^(\d+) (?:<\.\.\. (\w+) resumed>(.*)|(\w+)\((.*))$')
names, first_pid, children = {}, None, set()
section = {}  # pid -> the library call it is in, between the program's marks
pending, comm_open = {}, {}
calls = defaultdict(lambda: defaultdict(set))   # pid -> syscall -> details

def args_of(s):
    # top-level comma split of an argument list (good enough for strace output)
    out, depth, cur, q = [], 0, "", False
    for ch in s:
        if ch == '"' and not cur.endswith("\\"):
            q = not q
        if not q and ch in "([{":
            depth += 1
        if not q and ch in ")]}":
            if depth == 0:
                out.append(cur.strip()); return out
            depth -= 1
        if not q and depth == 0 and ch == ",":
            out.append(cur.strip()); cur = ""; continue
        cur += ch
    out.append(cur.strip())
    return out

def detail(name, a):
    if name == "ioctl" and len(a) > 1:
        m = re.match(r'_IOC\(.*0x(aa|66), (0x[0-9a-f]+)', a[1])
        if m and m.group(1) == "66" and int(m.group(2), 16) == 0x10:
            return "PAGEMAP_SCAN"
        return IOC_AA.get(int(m.group(2), 16), a[1]) if m and m.group(1) == "aa" else a[1]
    if name == "madvise" and len(a) > 2:
        m = re.match(r'(0x[0-9a-f]+|\d+)', a[2])
        return MADV.get(int(m.group(1), 0), a[2]) if m else a[2]
    if name == "mprotect" and len(a) > 2:
        return a[2]
    if name == "futex" and len(a) > 1:
        return a[1].replace("_PRIVATE", "").split("|")[0]
    if name in ("openat", "open") and len(a) > 1:
        return re.sub(r'/task/\d+/', '/task/TID/', a[1])
    if name == "fallocate" and len(a) > 1:
        return a[1]
    if name in ("clone", "clone3"):
        return "thread" if "CLONE_THREAD" in ",".join(a) else "process"
    return ""

def result(rest):
    m = re.search(r'= (-1 (\w+)|\?|[-\w]+)', rest)
    return m.group(2) if m and m.group(2) else None

for raw in open(sys.argv[1]):
    raw = raw.rstrip("\n")
    m = line_re.match(raw)
    if not m:
        continue
    pid = int(m.group(1))
    if first_pid is None:
        first_pid = pid
    if m.group(2):                      # resumed: only the result is new
        name, rest = m.group(2), m.group(3)
        d = pending.pop(pid, None)
        if d is None:
            continue
        a = d
    else:
        name, rest = m.group(4), m.group(5)
        unfinished = rest.endswith("<unfinished ...>")
        if unfinished:
            rest = rest[: -len("<unfinished ...>")]
        a = args_of(rest)
        if unfinished:
            pending[pid] = a
            rest = ""
    if name == "write" and a and a[0] == "-1":
        text = a[1].strip('"') if len(a) > 1 else ""
        section[pid] = text[len("begin:"):] if text.startswith("begin:") else None
        continue
    det = detail(name, a)
    err = result(rest)
    calls[(pid, section.get(pid))][name].add(det + (" -> " + err if err else ""))
    if name == "openat" and len(a) > 1:
        t = re.search(r'/proc/self/task/(\d+)/comm', a[1])
        if t:
            comm_open[pid] = int(t.group(1))
    if name == "write" and pid in comm_open and len(a) > 1:
        names[comm_open.pop(pid)] = a[1].strip('"')
    if name in ("clone", "clone3", "fork", "vfork") and det == "process":
        r = re.search(r'= (\d+)', rest)
        if r:
            children.add(int(r.group(1)))

groups = defaultdict(lambda: defaultdict(set))
for (pid, sec), cs in calls.items():
    who = names.get(pid) or ("calling thread in " + sec if sec else
                             "the program's main thread" if pid == first_pid else
                             "forked children" if pid in children else "the program's other threads")
    for c, ds in cs.items():
        groups[who][c] |= ds

order = ["gmem-fault", "gmem-uffd", "calling thread in gmem_create",
         "calling thread in gmem_create (THP)"]
for who in order + sorted(set(groups) - set(order)):
    if who not in groups:
        continue
    print(f"== {who}: {len(groups[who])} system calls")
    for c in sorted(groups[who]):
        ds = sorted(d for d in groups[who][c] if d)
        print(f"  {c}" + (": " + ", ".join(ds) if ds else ""))
EOF
