#!/usr/bin/env python3
# Writes the seed corpus of fuzz-nbd (tests/nbd/corpus): client byte
# streams a fuzzer could take long to find on its own: every option,
# well-formed and not, then requests of every type. The first byte of
# each input selects the export (see pick_export() in fuzz-nbd.c).
#   python3 tests/nbd/make-corpus.py tests/nbd/corpus
# make fuzz-nbd-merge adds what libFuzzer found to the same directory.
import os
import struct
import sys

OPTS = 0x49484156454F5054
REQ = 0x25609513


def opt(o, data=b""):
    return struct.pack(">QII", OPTS, o, len(data)) + data


def go(name=b"", infos=(3,), o=7):
    d = struct.pack(">I", len(name)) + name + struct.pack(">H", len(infos))
    return opt(o, d + b"".join(struct.pack(">H", i) for i in infos))


def meta(o, name=b"", queries=(b"base:allocation",)):
    d = struct.pack(">I", len(name)) + name + struct.pack(">I", len(queries))
    return opt(o, d + b"".join(struct.pack(">I", len(q)) + q for q in queries))


def req(t, off=0, ln=4096, flags=0, cookie=1, payload=True):
    h = struct.pack(">IHHQQI", REQ, flags, t, cookie, off, ln)
    return h + (b"\xab" * ln if t == 1 and payload else b"")


FIXED = struct.pack(">I", 3)
seeds = {
    "go-read-write": [0x02, FIXED + go() + req(0) + req(1) + req(3, 0, 0) +
                      req(2, 0, 0)],
    "go-structured": [0x02, FIXED + opt(8) + go() + req(0, flags=4) +
                      req(0, 1 << 20, 4096) + req(6, 0, 4096, 1 | 2 | 16)],
    "export-name": [0x01, struct.pack(">I", 1) + opt(1, b"") + req(0, 0, 1)],
    "export-name-disk": [0x42, FIXED + opt(1, b"disk") + req(4, 0, 512)],
    "export-name-bad": [0x40, FIXED + opt(1, b"nope")],
    "list-info-abort": [0xc3, FIXED + opt(3) + go(b"disk", (0, 1, 2, 3), 6) +
                        opt(2)],
    "list-with-data": [0x03, FIXED + opt(3, b"xx") + go()],
    "meta": [0x03, FIXED + meta(10) + opt(8) + meta(9) + meta(10, b"",
             (b"base:", b"qemu:dirty-bitmap:x")) + go()],
    "meta-bad": [0x03, FIXED + opt(8) + opt(10, struct.pack(">II", 0, 5))],
    "go-bad": [0x03, FIXED + opt(7, b"\0\0") + opt(7, struct.pack(">IH", 99, 0))
               + go(b"a\0b") + go(b"nope") + go()],
    "unknown-options": [0x03, FIXED + opt(5) + opt(99, b"abc") + opt(11) +
                        go()],
    "plain-newstyle": [0x03, struct.pack(">I", 0) + go()],
    "bad-flags": [0x03, struct.pack(">I", 0x80)],
    "read-only": [0x22, FIXED + go() + req(1) + req(4) + req(6) + req(0)],
    "aligned-4096": [0x13, FIXED + go() + req(0, 1, 4096) + req(0, 0, 4095) +
                     req(1, 4096, 4096) + req(0, 0, 4096)],
    "bounds": [0x04, FIXED + go() + req(0, 65536 - 4096, 8192) +
               req(0, (1 << 64) - 4096, 8192) + req(1, 65535, 2) +
               req(0, 0, 0) + req(0, 0, (1 << 25) + 1) + req(99)],
    "huge-write": [0x05, FIXED + go() + req(1, 0, (1 << 25) + 1,
                                            payload=False)],
    "bad-magic": [0x05, FIXED + go() + b"\x12" * 28],
    "trim-zero": [0x05, FIXED + opt(8) + go() + req(4, 0, 4096, 1) +
                  req(6, 4096, 4096, 2) + req(6, 0, 4096, 16) +
                  req(6, 0, 4096, 8)],
    "big-size": [0x06, FIXED + go() + req(0, (1 << 63) - 4096, 4096) +
                 req(6, 1 << 62, 1 << 31)],
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "corpus"
    os.makedirs(out, exist_ok=True)
    for name, (sel, body) in seeds.items():
        data = bytes([sel]) + body
        path = os.path.join(out, "seed-" + name)
        with open(path, "wb") as f:
            f.write(data)
    print("%d seeds in %s" % (len(seeds), out))


if __name__ == "__main__":
    main()
