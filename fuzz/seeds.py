#!/usr/bin/env python3
"""seeds.py - write fuzz/corpus: one small program per behaviour of the contract.

The byte format is fuzz_gmem.c's decoder; each seed is a readable list of
operations here, so that the corpus can be regenerated and reviewed.
Run: python3 fuzz/seeds.py fuzz/corpus
"""
import os
import sys

SHMEM, THP, PRIV, SEGV, FRESH = 0, 1, 2, 4, 0x20
PAGES = {4: 0, 16: 1, 64: 2, 9: 3}
NONE, WAIT, DEFER, BOTH, BAD = 0, 1, 2, 3, 4
SHARED, PRIVATE = 0, 1


def config(backing=SHMEM, flags=0, pages=16):
    return bytes([backing | flags | (PAGES[pages] << 3)])


def rng(first, n):
    """n pages from first; "end" runs to the object's end, "past" a page beyond."""
    if n == "end":
        code = 0xf0
    elif n == "past":
        code = 0xf1
    elif n <= 16:
        code = n
    else:
        assert n % 8 == 0 and n // 8 < 0x30
        code = 0xc0 + n // 8
    return bytes([code, first & 0xff, first >> 8])


def convert(first, n, to, mode=NONE):
    return bytes([0, to | (mode << 1)]) + rng(first, n)


def pin(first, n, long=False):
    return bytes([1, int(long)]) + rng(first, n)


def unpin(first, n, long=False):
    return bytes([2, int(long)]) + rng(first, n)


def discard(first, n):
    return bytes([3]) + rng(first, n)


def view(first, n, strict=False):
    return bytes([4, int(strict)]) + rng(first, n)


def unview(slot, bogus=False):
    return bytes([5, slot | (0x80 if bogus else 0)])


def host(slot, page, write=False, token=0):
    return bytes([6, slot | (0x80 if write else 0), token, page & 0xff, page >> 8])


def guest(page, token):
    return bytes([7, token | 1, page & 0xff, page >> 8])


def state(page):
    return bytes([8, page & 0xff, page >> 8])


def callback():
    return bytes([9])


def inject(nth):
    return bytes([10, nth - 1])


MLOCK, ONFAULT, MUNLOCK = 0x00, 0x40, 0x60


def lock(slot, how=MLOCK):
    return bytes([11, slot | how])


NULLBUF, NULLEOFF, VIEWBUF = 1, 2, 4


def brange(page, delta, n):
    """Bytes from page's start give or take delta (-128..127), n of them: a
    count below 64, ("odd", k) for k * 131, ("half", k) for k half pages,
    "end" to the end of the object, "past" one byte more, "overflow"."""
    if n == "end":
        code = 0xf0
    elif n == "past":
        code = 0xf1
    elif n == "overflow":
        code = 0xe0
    elif isinstance(n, tuple):
        kind, k = n
        code = (0x40 if kind == "odd" else 0x80) + k
        assert k < (0x40 if kind == "odd" else 0x60)
    else:
        assert n < 0x40
        code = n
    return bytes([code, delta & 0xff, page & 0xff, page >> 8])


def read(page, delta, n, flags=0):
    return bytes([12, flags]) + brange(page, delta, n)


def write(page, delta, n, seed=0, flags=0):
    """seed picks the bytes written (and the view, with VIEWBUF)."""
    return bytes([36, flags | seed << 3]) + brange(page, delta, n)


def collapse(first, n):
    """gmem_collapse(): op bytes 60-71 (fuzz_gmem.c: added_ops)."""
    return bytes([60]) + rng(first, n)


def track_start(guest=False, bogus=False, null=False):
    """gmem_track_start(): op bytes 72-79; GMEM_TRACK_GUEST, an invalid flag, a NULL object."""
    return bytes([72, int(guest) | (0x80 if bogus else 0) | (0x60 if null else 0)])


def track_stop(null=False):
    """gmem_track_stop(): op bytes 80-83."""
    return bytes([80, 0x80 if null else 0])


COLLECT_BAD = {None: 0, "flags": 12, "null": 13, "offset": 14, "len": 15}


def collect(first, n, peek=False, bad=None):
    """gmem_track_collect() of the range: op bytes 84-107; GMEM_TRACK_PEEK, or
    an invalid flag, a NULL bitmap, an offset or a length not page-aligned."""
    return bytes([84, int(peek) | COLLECT_BAD[bad] << 1]) + rng(first, n)


def munmap(slot):
    """munmap() a whole view behind the library's back: op bytes 108-113."""
    return bytes([108, slot])


SEEDS = {
    "convert-roundtrip": config() + view(0, 8) + host(0, 2, True, 0x41)
    + convert(0, 4, PRIVATE) + host(0, 2) + convert(0, 4, SHARED) + host(0, 2),
    "guest-secret-stays": config() + view(0, 8) + convert(2, 2, PRIVATE) + guest(2, 0x5b)
    + host(0, 2) + host(0, 3, True, 7) + convert(2, 2, SHARED) + host(0, 2),
    "init-private": config(flags=PRIV) + view(0, 4) + host(0, 1) + convert(1, 1, SHARED)
    + host(0, 1, True, 9) + state(1) + state(0),
    "segv-policy": config(flags=SEGV) + view(0, 4) + convert(1, 2, PRIVATE) + host(0, 1)
    + host(0, 2, True, 3) + convert(1, 1, SHARED) + host(0, 1, True, 5),
    "pin-eagain": config() + pin(3, 2) + convert(0, 8, PRIVATE) + convert(0, 8, PRIVATE, WAIT)
    + unpin(3, 2) + convert(0, 8, PRIVATE),
    "long-pin-ebusy": config() + pin(5, 1, True) + pin(4, 1) + convert(0, 8, PRIVATE, DEFER)
    + unpin(5, 1, True) + convert(0, 8, PRIVATE, DEFER) + unpin(4, 1),
    "defer-completes": config() + view(0, 16) + pin(2, 2) + host(0, 2, True, 0x11)
    + convert(0, 6, PRIVATE, DEFER) + host(0, 3) + host(0, 4) + pin(2, 1) + unpin(2, 1)
    + host(0, 2) + unpin(3, 1) + host(0, 3) + state(5),
    "defer-cancelled": config() + pin(1, 1) + convert(0, 4, PRIVATE, DEFER)
    + convert(1, 1, SHARED) + unpin(1, 1) + convert(0, 4, PRIVATE, DEFER) + convert(2, 4, PRIVATE),
    "defer-no-callback": config() + callback() + pin(0, 1) + convert(0, 2, PRIVATE, DEFER)
    + unpin(0, 1) + callback() + pin(2, 1) + convert(2, 1, PRIVATE, DEFER) + unpin(2, 1),
    "strict-view": config() + view(0, 4, True) + convert(2, 4, PRIVATE) + convert(4, 2, PRIVATE)
    + view(4, 4, True) + unview(0) + convert(2, 4, PRIVATE) + view(0, 8, True),
    "discard": config() + view(0, 8) + host(0, 1, True, 0x21) + pin(1, 1) + discard(0, 4)
    + unpin(1, 1) + discard(0, 4) + host(0, 1) + convert(1, 1, PRIVATE) + discard(1, 1)
    + host(0, 1) + convert(1, 1, SHARED) + host(0, 1),
    "bad-input": config() + convert(0, 0, PRIVATE) + convert(16, 1, PRIVATE) + convert(0, 1, PRIVATE, BOTH)
    + convert(0, 1, PRIVATE, BAD) + bytes([0, 0x81]) + rng(0, 1) + pin(15, 2) + unpin(0, 1)
    + bytes([1, 0x80]) + rng(0, 1) + discard(0, 0) + view(0, 0) + bytes([4, 0x80]) + rng(0, 1)
    + unview(0) + view(0, 2) + unview(0, True) + state(16) + state(17),
    "views-many": config(pages=64) + view(0, 64) + view(8, 8) + view(16, 4, True) + host(1, 3, True, 0x33)
    + convert(8, 8, PRIVATE) + host(0, 11) + host(1, 3) + convert(9, 1, SHARED) + host(1, 1)
    + unview(1) + host(0, 9),
    "thp-split": config(backing=THP) + view(0, "end") + host(0, 7, True, 0x71) + convert(1, 1, PRIVATE)
    + host(0, 1) + host(0, 2) + convert(1, 1, SHARED) + host(0, 7) + convert(0, "end", PRIVATE)
    + convert(0, "end", SHARED),
    "thp-defer": config(backing=THP, flags=SEGV) + view(0, "end") + pin(10, 3) + convert(8, 8, PRIVATE, DEFER)
    + host(0, 11, True, 3) + host(0, 14) + unpin(10, 3) + host(0, 11),
    "inject-create-paths": config() + inject(1) + view(0, 4) + inject(2) + view(0, 4) + inject(3)
    + view(0, 4, True) + view(0, 4) + host(1, 0),
    "inject-convert": config() + view(0, 8) + host(0, 1, True, 1) + inject(1) + convert(0, 4, PRIVATE)
    + inject(2) + convert(0, 4, PRIVATE) + inject(3) + convert(0, 4, PRIVATE) + convert(0, 4, PRIVATE)
    + host(0, 1) + inject(1) + convert(0, 4, SHARED) + inject(2) + convert(0, 4, SHARED)
    + convert(0, 4, SHARED) + host(0, 1),
    "inject-defer": config() + pin(1, 1) + inject(1) + convert(0, 2, PRIVATE, DEFER) + inject(2)
    + convert(0, 2, PRIVATE, DEFER) + convert(0, 2, PRIVATE, DEFER) + inject(2)
    + convert(0, 3, PRIVATE, DEFER) + unpin(1, 1),
    "fresh-private": config(flags=FRESH) + view(0, 8) + host(0, 1, True, 0x13) + pin(2, 1)
    + convert(0, 4, PRIVATE) + host(0, 1) + guest(1, 0x25) + convert(0, 4, PRIVATE, DEFER)
    + host(0, 2, True, 5) + unpin(2, 1) + convert(0, 8, SHARED) + host(0, 1) + host(0, 2),
    "locked-views": config(flags=PRIV) + view(0, 8) + convert(0, 4, SHARED) + lock(0)
    + host(0, 1, True, 9) + host(0, 5) + convert(0, 2, PRIVATE) + host(0, 1) + lock(0, MUNLOCK)
    + view(4, 4) + lock(1, ONFAULT) + pin(2, 1) + convert(2, 2, PRIVATE, DEFER) + host(0, 2)
    + unpin(2, 1) + host(0, 2),
    "locked-segv": config(flags=SEGV) + view(0, 8) + lock(0, ONFAULT) + convert(1, 2, PRIVATE)
    + host(0, 1) + host(0, 2, True, 4) + convert(0, 8, SHARED) + host(0, 2, True, 6)
    + lock(0, MUNLOCK) + convert(2, 1, PRIVATE) + host(0, 2),
    "inject-completion": config(flags=FRESH) + view(0, 8) + host(0, 0, True, 0x31) + pin(0, 1)
    + convert(0, 2, PRIVATE, DEFER) + host(0, 0) + inject(3) + unpin(0, 1) + state(0) + host(0, 1)
    + pin(0, 1) + convert(0, 2, SHARED) + host(0, 0) + pin(1, 1) + convert(0, 2, PRIVATE, DEFER)
    + inject(1) + unpin(1, 1),
    "thp-collapse": config(backing=THP) + view(0, "end") + host(0, 7, True, 0x71) + convert(3, 2, PRIVATE)
    + host(0, 3) + discard(5, 1) + discard(400, 2) + guest(401, 0x43) + pin(9, 1) + collapse(200, 1)
    + unpin(9, 1) + collapse(200, 1) + host(0, 5) + host(0, 7) + host(0, 3) + convert(3, 2, SHARED)
    + host(0, 4) + pin(0, 1, True) + collapse(0, "end") + unpin(0, 1, True) + collapse(0, "end")
    + collapse(0, 0) + inject(1) + discard(6, 1) + inject(2) + collapse(0, 8) + collapse(0, 8),
    "shmem-collapse": config() + view(0, 8) + host(0, 1, True, 0x21) + pin(1, 1) + collapse(0, 8)
    + discard(2, 1) + collapse(0, 16) + collapse(16, 1) + unpin(1, 1) + host(0, 1),
    "inject-pin-discard": config() + inject(1) + pin(0, 2) + pin(0, 2) + unpin(0, 2) + inject(1)
    + discard(0, 4) + host(0, 0) + discard(0, 4),
    "copy-bytes": config() + view(0, 8) + write(0, 100, ("half", 3), 1) + read(1, -5, 10)
    + host(0, 1) + write(2, -1, 2, 2) + host(0, 2, True, 0x45) + read(0, 0, "end")
    + read(16, 0, 0) + read(16, 1, 0, NULLBUF) + read(15, 0, "past") + write(0, 0, "overflow")
    + read(0, 3, 5, NULLBUF) + write(0, 3, 5, 0, NULLBUF) + write(1, 0, 0, 0, NULLBUF)
    + discard(0, 2) + read(0, 7, ("odd", 40)),
    "copy-refused": config() + view(0, 8) + host(0, 2, True, 0x21) + convert(3, 1, PRIVATE)
    + guest(3, 0x31) + read(2, 10, ("half", 3)) + write(2, 10, ("half", 3), 3)
    + read(2, 10, ("half", 3), NULLEOFF) + pin(5, 1) + convert(4, 2, PRIVATE, DEFER)
    + read(5, 0, 8) + write(4, -1, 2, 4) + read(0, 0, "end") + unpin(5, 1)
    + convert(0, 8, SHARED) + read(3, 0, 1) + write(0, 0, 8, 0, VIEWBUF)
    + read(0, 0, 8, VIEWBUF) + inject(1) + write(6, 3, 20, 5) + inject(1) + read(6, 3, 20),
    "copy-thp": config(backing=THP) + write(100, 7, ("odd", 40), 6) + convert(101, 1, PRIVATE)
    + read(100, 0, ("half", 6)) + write(101, -1, 2, 7) + read(511, 100, "end")
    + write(0, 0, "end", 8) + convert(0, "end", SHARED) + write(0, 0, "end", 9)
    + read(0, 0, "end"),
    "track-host-writes": config() + view(0, 8) + host(0, 1, True, 1) + track_start() + track_start()
    + host(0, 2) + host(0, 3, True, 5) + collect(0, 16, peek=True) + collect(0, 16) + collect(0, 16)
    + host(0, 3, True, 6) + host(0, 5, True, 7) + collect(2, 2) + collect(0, 16) + track_stop()
    + track_stop() + collect(0, 16),
    "track-conversions": config() + view(0, 8) + view(4, 8) + track_start() + host(0, 1, True, 1)
    + host(0, 2) + convert(0, 4, PRIVATE) + convert(0, 4, SHARED) + collect(0, 16) + host(1, 5, True, 2)
    + pin(6, 1) + convert(4, 4, PRIVATE, DEFER) + host(1, 6, True, 3) + host(1, 5) + unpin(6, 1)
    + collect(0, 16) + convert(4, 4, SHARED) + host(1, 7, True, 4) + convert(6, 2, PRIVATE, WAIT)
    + collect(0, "end"),
    "track-copies-discards": config() + track_start() + write(2, 100, ("half", 3), 1) + read(5, 0, 10)
    + collect(0, 16) + discard(8, 2) + collect(8, 2, peek=True) + collect(0, 16) + convert(3, 1, PRIVATE)
    + write(2, 0, ("half", 4), 2) + pin(9, 1) + discard(8, 4) + collect(0, 16),
    "track-guest": config(flags=PRIV) + convert(0, 8, SHARED) + view(0, 8) + track_start(guest=True)
    + guest(1, 0x11) + guest(12, 0x13) + host(0, 2, True, 3) + collect(0, 16) + track_stop()
    + track_start() + guest(5, 0x15) + collect(0, 16),
    "track-views-unmapped": config() + track_start() + view(0, 8) + view(0, 16) + host(0, 1, True, 1)
    + host(1, 9, True, 2) + host(1, 3) + unview(0) + munmap(1) + collect(0, 16) + view(0, 4)
    + host(0, 2, True, 3) + collect(0, 16) + view(8, 8, True) + munmap(1) + convert(8, 8, PRIVATE)
    + munmap(0) + collect(0, 16),
    "track-bad-input": config() + collect(0, 4) + track_stop() + track_start(bogus=True)
    + track_start(null=True) + track_start() + collect(0, 0) + collect(16, 1) + collect(15, "past")
    + collect(0, 4, bad="flags") + collect(0, 4, bad="null") + collect(0, 4, bad="offset")
    + collect(0, 4, bad="len") + track_stop(null=True) + collect(0, "end"),
    "track-thp": config(backing=THP) + view(0, "end") + track_start(guest=True) + host(0, 7, True, 0x71)
    + guest(300, 0x33) + discard(5, 1) + collect(0, "end") + host(0, 9, True, 3) + host(0, 200)
    + discard(400, 1) + collect(0, "end") + collapse(0, "end") + track_stop() + collapse(0, "end")
    + track_start() + host(0, 9, True, 5) + guest(11, 0x35) + discard(10, 1) + collect(0, "end")
    + collapse(0, 8) + host(0, 12, True, 7) + collect(0, "end"),
    "track-fresh": config(flags=FRESH) + view(0, 8) + track_start(guest=True) + host(0, 1, True, 1)
    + convert(0, 4, PRIVATE) + guest(2, 0x21) + convert(0, 4, SHARED) + collect(0, 16) + pin(5, 1)
    + convert(4, 4, PRIVATE, DEFER) + unpin(5, 1) + collect(0, 16),
    "track-inject": config() + view(0, 8) + view(4, 8) + inject(1) + track_start(guest=True)
    + inject(2) + track_start(guest=True) + inject(3) + track_start(guest=True) + track_start(guest=True)
    + host(0, 1, True, 1) + host(1, 6, True, 2) + guest(10, 3) + inject(1) + collect(0, 16)
    + collect(0, 16) + host(0, 1, True, 4) + host(1, 6, True, 5) + guest(11, 5) + inject(2)
    + collect(0, 16) + collect(0, 16) + host(0, 1, True, 6) + host(1, 6, True, 7) + guest(12, 7)
    + inject(3) + collect(0, 16) + collect(0, 16) + inject(1) + track_stop() + collect(0, 16),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
    os.makedirs(out, exist_ok=True)
    for name, data in sorted(SEEDS.items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
