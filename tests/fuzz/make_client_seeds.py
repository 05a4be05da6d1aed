#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (c) 2026 the vfu authors.
"""Writes the seed corpus of fuzz_client: client scripts with the server
streams that answer them (see the input format in fuzz_client.c).

Usage: make_client_seeds.py <dir>
"""

import os
import struct
import sys

# ctl bits of a chunk
PATCH_ID, PATCH_CMD, PAUSE, END, PAD = 0x01, 0x02, 0x10, 0x20, 0x40


def fds(n):
    return n << 2


REPLY, COMMAND, ERROR = 0x1, 0x0, 0x20

VERSION, DMA_MAP, DMA_UNMAP, GET_INFO, REGION_INFO, IO_FDS, IRQ_INFO, \
    SET_IRQS, REGION_READ, REGION_WRITE, DMA_READ, DMA_WRITE, RESET = range(1, 14)
WRITE_MULTI, FEATURE, MIG_READ, MIG_WRITE = 15, 16, 17, 18


def msg(cmd, payload=b"", flags=REPLY, err=0, msg_id=0):
    return struct.pack("<HHIII", msg_id, cmd, 16 + len(payload), flags,
                       err) + payload


def chunk(data, ctl=PATCH_ID | PATCH_CMD):
    assert len(data) < 65536
    return struct.pack("<BH", ctl, len(data)) + data


def padded(data, zeros, ctl=PATCH_ID | PATCH_CMD):
    """A chunk followed by zeros (a multiple of 16) on the wire."""
    assert zeros % 16 == 0
    return struct.pack("<BHH", ctl | PAD, len(data), zeros // 16) + data


def reply(cmd, payload=b"", ctl=PATCH_ID | PATCH_CMD, **kw):
    return chunk(msg(cmd, payload, **kw), ctl)


def seed(script, chunks, mode=0):
    script = bytes(script)
    return struct.pack("<HB", len(script), mode) + script + b"".join(chunks)


def version(max_xfer=1 << 20, extra=""):
    caps = ('{"capabilities":{"max_msg_fds":8,"max_data_xfer_size":%d,'
            '"pgsizes":4096,"max_dma_maps":1024,"migration":{"pgsize":4096,'
            '"max_bitmap_size":1048576}%s}}' % (max_xfer, extra))
    return reply(VERSION, struct.pack("<HH", 0, 0) + caps.encode() + b"\0")


def region_info(index, size, argsz=32, cap_offset=0, caps=b""):
    return struct.pack("<IIIIQQ", argsz, 0xf, index, cap_offset, size,
                       0) + caps


def feature(flags, data=b""):
    return struct.pack("<II", 8 + len(data), flags) + data


# script ops (fuzz_client.c run_script)
NEG, NEG_CAPS, NEG_RAW, INFO, RINFO, IRQINFO, SETIRQS = 0, 1, 2, 3, 4, 5, 6
RREAD, RWRITE, RPOSTED, RMULTI, RESET_OP, IOFDS = 7, 8, 9, 10, 11, 12
MAP, MAP_FD, UNMAP, FEAT, LOG_START, LOG_STOP, LOG_REPORT, DIRTY = \
    13, 14, 15, 16, 17, 18, 19, 20
MIG_FLAGS, MIG_GET, MIG_SET, MIG_DREAD, MIG_DWRITE, MIG_RALL, MIG_WALL, \
    MIGRATE = range(21, 29)
RECV, POLL, CALL, SEND, PARALLEL = 29, 30, 31, 32, 33

SIZE_4K, SIZE_64K1, SIZE_100K = 7, 10, 11     # pick_size indices
U64_0, U64_4K, U64_64K = 0, 2, 3               # pick_u64 indices


def seeds():
    s = {}
    s["version"] = seed([NEG, INFO], [
        version(),
        reply(GET_INFO, struct.pack("<IIII", 16, 3, 9, 5))])
    s["version-error"] = seed([NEG, NEG], [
        reply(VERSION, flags=REPLY | ERROR, err=22),
        reply(VERSION, struct.pack("<HH", 1, 0))])
    # a chain: sparse mmap areas (id 1), then the region's type (id 2)
    sparse = struct.pack("<HHIII", 1, 1, 32 + 32, 1, 0) + \
        struct.pack("<QQ", 0, 4096) + struct.pack("<HHIII", 2, 1, 0, 3, 1)
    s["region-info"] = seed([NEG, RINFO, 2, RINFO, 0, IRQINFO, 4], [
        version(),
        # too small first: the client asks again with the argsz it needs
        reply(REGION_INFO, region_info(2, 8192, argsz=32 + len(sparse),
                                       cap_offset=32)),
        reply(REGION_INFO, region_info(2, 8192, argsz=32 + len(sparse),
                                       cap_offset=32, caps=sparse),
              ctl=PATCH_ID | PATCH_CMD | fds(1)),
        reply(REGION_INFO, region_info(0, 4096)),
        reply(IRQ_INFO, struct.pack("<IIII", 16, 0, 4, 1))])
    # >64 KiB write in pieces of 32 KiB, a read, a posted write
    acc = lambda n: struct.pack("<QII", 0, 0, n)
    s["region-rw"] = seed(
        [NEG_CAPS, 0, 8, 0x80] + list(struct.pack("<Q", 32768)) +
        [U64_4K, 1, U64_4K, 1, 1,
         RWRITE, 0, U64_0, SIZE_64K1,
         RREAD, 0, U64_0, 5,
         RPOSTED, 0, U64_0, 3,
         RMULTI, 0, U64_0, 0, 2], [
            version(32768),
            reply(REGION_WRITE, acc(32768)), reply(REGION_WRITE, acc(32768)),
            reply(REGION_WRITE, acc(1)),
            reply(REGION_READ, acc(16) + bytes(range(16))),
            reply(WRITE_MULTI, struct.pack("<Q", 2))])
    # replies bigger than the input: 100000 bytes read straight into the
    # caller's buffer, and 256 KiB of migration data
    big = lambda cmd, fixed, n: padded(
        struct.pack("<HHIII", 0, cmd, 16 + len(fixed) + n, REPLY, 0) + fixed, n)
    s["big-read"] = seed([NEG, RREAD, 0, U64_0, SIZE_100K,
                          MIG_DREAD, 12, RREAD, 1, U64_0, 12], [
        version(),
        big(REGION_READ, struct.pack("<QII", 0, 0, 100000), 100000),
        big(MIG_READ, struct.pack("<II", 8 + 262144, 262144), 262144),
        # says 262144 bytes but the stream ends first
        padded(struct.pack("<HHIII", 0, REGION_READ, 16 + 16 + 262144, REPLY,
                           0) + struct.pack("<QII", 0, 1, 262144), 4096,
               ctl=PATCH_ID | PATCH_CMD | END)])
    # the server reads and writes client memory while the client polls
    s["dma"] = seed([NEG, MAP, 0, 0, 3, 1, MAP_FD, 1, 0, 3, 0, U64_64K,
                     POLL, 0, 0, 3, POLL, 0, 0, 3, RECV, 0, 64, 1, 1,
                     UNMAP, 0, UNMAP, 1], [
        version(),
        reply(DMA_MAP), reply(DMA_MAP),
        chunk(msg(DMA_READ, struct.pack("<QQ", 16, 64), flags=COMMAND,
                  msg_id=7), ctl=PAUSE),
        chunk(msg(DMA_WRITE, struct.pack("<QQ", 32, 8) + b"12345678",
                  flags=COMMAND, msg_id=8), ctl=PAUSE),
        chunk(msg(DMA_READ, struct.pack("<QQ", 0x10000, 8), flags=COMMAND,
                  msg_id=9), ctl=PAUSE),
        reply(DMA_UNMAP, struct.pack("<IIQQ", 24, 0, 0, 4096)),
        reply(DMA_UNMAP, struct.pack("<IIQQ", 24, 2, 0, 0))])
    s["irqs"] = seed([NEG, SETIRQS, 3, 0x24, 0, 0, 1, 1, 2, 0, 0, 3,
                      IOFDS, 4, 2, 1, RESET_OP], [
        version(),
        reply(SET_IRQS),
        reply(IO_FDS, struct.pack("<IIII", 64, 0, 1, 1) +
              struct.pack("<QQIIIIQQ", 0, 4, 0, 0, 0, 0, 0, 0),
              ctl=PATCH_ID | PATCH_CMD | fds(1)),
        reply(RESET, flags=REPLY | ERROR, err=95)])
    mig_flags = struct.pack("<Q", 5)
    state = lambda st: struct.pack("<II", st, 0)
    s["migration"] = seed([NEG, MIG_FLAGS, 0, MIG_SET, 0, 6, MIG_DREAD, 7,
                           MIG_GET, 0, LOG_START, 1, 1, LOG_REPORT, 1, 1, 8,
                           LOG_STOP, 1, MIG_DWRITE, 6], [
        version(),
        reply(FEATURE, feature(0x10001, mig_flags)),
        reply(FEATURE, feature(0x20002, state(6))),
        reply(MIG_READ, struct.pack("<II", 8 + 100, 100) + bytes(100)),
        reply(FEATURE, feature(0x10002, state(6))),
        reply(FEATURE, feature(0x20006)),
        reply(FEATURE, feature(0x10008, struct.pack("<QQQ", 0, 0x8000, 4096))
              + b"\xff" * 8),
        reply(FEATURE, feature(0x20007)),
        reply(MIG_WRITE, struct.pack("<II", 8, 64))])
    report = reply(FEATURE, feature(0x10008, struct.pack("<QQQ", 0, 0x10000,
                                                         4096)) + b"\x0f" * 8)
    s["migrate"] = seed([NEG, MIGRATE, 0, 1, U64_0, 1, MIG_RALL, 0], [
        version(),
        reply(FEATURE, feature(0x20002, state(4))),
        reply(FEATURE, feature(0x20006)),
        reply(FEATURE, feature(0x20002, state(6))),
        reply(MIG_READ, struct.pack("<II", 8 + 10, 10) + bytes(range(10))),
        reply(MIG_WRITE, struct.pack("<II", 8, 10)),
        report,
        reply(FEATURE, feature(0x20002, state(3))),
        reply(MIG_READ, struct.pack("<II", 8, 0)),
        report,
        reply(FEATURE, feature(0x20007)),
        reply(FEATURE, feature(0x20002, state(1))),
        reply(FEATURE, feature(0x20002, state(2))),
        reply(MIG_READ, struct.pack("<II", 8, 0))])
    # two threads' calls in flight: irq info on the side, device info here
    s["parallel"] = seed([NEG, PARALLEL, 1, 0, PARALLEL, 4, 4], [
        version(),
        reply(GET_INFO, struct.pack("<IIII", 16, 3, 9, 5), ctl=PAUSE | 3),
        reply(IRQ_INFO, struct.pack("<IIII", 16, 0, 0, 1), ctl=PAUSE | 3),
        reply(RESET, ctl=PAUSE | 3), reply(RESET, ctl=PAUSE | 3)])
    s["half-close"] = seed([NEG, RECV, 0, 16, 1, 3, INFO, POLL, 3], [
        version(),
        chunk(msg(REGION_READ, b"junk", flags=COMMAND, msg_id=3), ctl=END)],
        mode=1)
    s["garbage"] = seed([NEG_RAW, 3, 0x41, 0x42, 0x43, 0, CALL, 0, 64, 9, 8,
                         SEND, 2, 0, 20] + [0] * 20, [
        reply(VERSION, struct.pack("<HH", 0, 0) + b'{"capabilities":{}}\0'),
        reply(REGION_READ, b"\x01\x02\x03"),
        chunk(b"\x00\x00\x01\x00\x08\x00\x00\x00", ctl=PAUSE)])
    return s


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, data in seeds().items():
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
