#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (c) 2026 the vfu authors.
"""Write the seed corpora for the fuzz targets: well-formed sessions and
their near misses. Run from anywhere; writes into corpus/ beside this file."""
import json
import os
import struct

here = os.path.dirname(os.path.abspath(__file__))

VERSION, DMA_MAP, DMA_UNMAP, GET_INFO, REGION_INFO, IO_FDS, IRQ_INFO, SET_IRQS, \
    READ, WRITE, DMA_READ, DMA_WRITE, RESET = range(1, 14)
WRITE_MULTI, FEATURE, MIG_READ, MIG_WRITE = 15, 16, 17, 18
NO_REPLY = 0x10

QEMU_HELLO = json.dumps({"capabilities": {
    "max_msg_fds": 16, "max_data_xfer_size": 1048576, "pgsizes": 4096,
    "max_dma_maps": 65535,
    "migration": {"max_bitmap_size": 268435456, "pgsize": 4096},
    "write_multiple": True}}).encode() + b"\0"


class Session:
    def __init__(self):
        self.buf = b""
        self.next_id = 2  # even ids carry no fds in the fuzz harness

    def msg(self, cmd, payload=b"", flags=0, fds=False, size=None):
        mid = self.next_id | (1 if fds else 0)
        self.next_id += 2
        total = 16 + len(payload) if size is None else size
        self.buf += struct.pack("<HHIII", mid, cmd, total, flags, 0) + payload
        return self

    def version(self, doc=QEMU_HELLO, major=0, minor=0):
        return self.msg(VERSION, struct.pack("<HH", major, minor) + doc)


def feature(flags, data=b""):
    return struct.pack("<II", 8 + len(data) + 4096, flags) + data


def region_access(region, offset, count, data=b""):
    return struct.pack("<QII", offset, region, count) + data


def sessions():
    s = {}
    s["basic"] = (Session().version()
                  .msg(GET_INFO, struct.pack("<IIII", 16, 0, 0, 0))
                  .msg(REGION_INFO, struct.pack("<IIIIQQ", 32, 0, 7, 0, 0, 0))
                  .msg(REGION_INFO, struct.pack("<IIIIQQ", 256, 0, 1, 0, 0, 0))
                  .msg(IRQ_INFO, struct.pack("<IIII", 16, 0, 0, 0))
                  .msg(READ, region_access(7, 0, 64))
                  .msg(WRITE, region_access(7, 4, 2, b"\x07\x00"))
                  .msg(WRITE, region_access(0, 0, 4, b"abcd"), flags=NO_REPLY)
                  .msg(READ, region_access(0, 0, 4))
                  .msg(WRITE, region_access(2, 0, 1, b"\x7f"))
                  .msg(RESET))
    s["irqs"] = (Session().version()
                 .msg(SET_IRQS, struct.pack("<IIIII", 20, 0x24, 0, 0, 1), fds=True)
                 .msg(SET_IRQS, struct.pack("<IIIII", 20, 0x21, 0, 0, 1))
                 .msg(SET_IRQS, struct.pack("<IIIII", 20, 0x22, 0, 0, 1))
                 .msg(SET_IRQS, struct.pack("<IIIII", 21, 0x12, 0, 0, 1) + b"\x01")
                 .msg(SET_IRQS, struct.pack("<IIIII", 20, 0x24, 2, 0, 3), fds=True)
                 .msg(SET_IRQS, struct.pack("<IIIII", 20, 0x21, 2, 0, 0)))
    s["dma"] = (Session().version()
                .msg(DMA_MAP, struct.pack("<IIQQQ", 32, 3, 0, 0x100000, 0x10000), fds=True)
                .msg(DMA_MAP, struct.pack("<IIQQQ", 32, 3, 0, 0x200000, 0x1000))
                .msg(DMA_MAP, struct.pack("<IIQQQ", 32, 3, 0, 0x100000, 0x1000), fds=True)
                .msg(FEATURE, feature(0x20006, struct.pack("<QII", 4096, 1, 0) +
                                      struct.pack("<QQ", 0x100000, 0x10000)))
                .msg(FEATURE, feature(0x10008, struct.pack("<QQQ", 0x100000, 0x10000, 4096)))
                .msg(FEATURE, feature(0x20007))
                .msg(DMA_UNMAP, struct.pack("<IIQQ", 24, 0, 0x100000, 0x10000))
                .msg(DMA_UNMAP, struct.pack("<IIQQ", 24, 2, 0, 0)))
    s["migration"] = (Session().version()
                      .msg(FEATURE, feature(0x10001))
                      .msg(FEATURE, feature(0x10002))
                      .msg(FEATURE, feature(0x20002, struct.pack("<II", 2, 0)))
                      .msg(FEATURE, feature(0x20002, struct.pack("<II", 3, 0)))
                      .msg(MIG_READ, struct.pack("<II", 4096, 64))
                      .msg(FEATURE, feature(0x20002, struct.pack("<II", 1, 0)))
                      .msg(FEATURE, feature(0x20002, struct.pack("<II", 4, 0)))
                      .msg(MIG_WRITE, struct.pack("<II", 24, 16) + b"x" * 16)
                      .msg(FEATURE, feature(0x20002, struct.pack("<II", 2, 0))))
    s["multi"] = (Session().version()
                  .msg(WRITE_MULTI, struct.pack("<Q", 2) +
                       struct.pack("<QII8s", 0, 0, 4, b"wxyz") +
                       struct.pack("<QII8s", 1, 2, 1, b"\x01"))
                  .msg(IO_FDS, struct.pack("<IIII", 4096, 0, 0, 0)))
    s["bad"] = (Session().version(b"{not json")
                .version(b'{"capabilities": {"max_msg_fds": "x"}}\0')
                .version(major=1)
                .version()
                .version()
                .msg(READ, region_access(9, 0, 4))
                .msg(READ, region_access(0, 0xfffffffffffffffc, 8))
                .msg(WRITE, region_access(0, 0, 8, b"ab"))
                .msg(99)
                .msg(GET_INFO, flags=1)
                .msg(READ, size=1 << 24))
    return s


def dma_seeds():
    """fuzz_dma: opcode bytes, then fields (see fuzz_dma.c)."""
    rw_memfd = bytes([0, 3, 0x01, 0x04, 0, 3, 0x10])  # map 0x1000+0x4000 rw
    ro_none = bytes([0, 1, 0x10, 0x02, 0, 0])           # message-only map
    wrong_fd = bytes([0, 3, 0x20, 0x01, 0, 1])          # eventfd for memory
    closed_fd = bytes([0, 3, 0x21, 0x01, 0, 2])
    small_file = bytes([0, 3, 0x30, 0x08, 1, 3, 0x01])  # file too small
    sgl = bytes([4, 0x01, 0x00, 0x10, 1])
    start = bytes([3, 0, 0, 1, 0x01, 0x04])              # log [0x1000, +0x4000)
    report = bytes([3, 2, 0x01, 0x04, 0])
    stop = bytes([3, 1])
    unmap_bitmap = bytes([2, 1, 0x01, 0x04, 0, 8, 0])
    unmap_all = bytes([2, 2, 0, 0])
    return {
        "map-sgl-unmap": rw_memfd + sgl + bytes([2, 0, 0x01, 0x04]) + sgl,
        "dirty": rw_memfd + start + sgl + report + unmap_bitmap + stop,
        "bad-fds": wrong_fd + closed_fd + small_file + ro_none + sgl + unmap_all,
        "overlap": rw_memfd + rw_memfd + bytes([0, 3, 0x02, 0x04, 0, 3, 0x10]) + unmap_all,
        "raw": bytes([5, 0, 32]) + struct.pack("<IIQQQ", 32, 3, 0, 0x1000, 0x1000) + bytes([0]),
    }


def migration_seeds():
    """fuzz_migration: opcode bytes, then fields (see fuzz_migration.c)."""
    RUNNING, STOP, STOP_COPY, RESUMING, PRE_COPY = 2, 1, 3, 4, 6
    def st(s):
        return bytes([0, s])
    rd = bytes([2, 0, 0x40, 0])
    wr = bytes([3, 0x10]) + bytes(16)
    return {
        "save": st(PRE_COPY) + rd + st(STOP_COPY) + rd + rd + st(STOP) + st(RUNNING),
        "load": st(STOP) + st(RESUMING) + wr + st(STOP) + st(RUNNING),
        "fail": bytes([5 | (2 << 3), 0, 0]) + st(STOP) + bytes([6]) + st(STOP),
        "bad-devices": bytes([5, 3, 3]) + st(PRE_COPY) + rd + bytes([5, 1, 2]) +
                       st(RESUMING) + wr,
        "features": bytes([4]) + struct.pack("<II", 0x10001, 16) + bytes([0]) +
                    bytes([4]) + struct.pack("<II", 0x40002, 16) + bytes([8]) + bytes(8),
    }


def lua_seeds():
    """fuzz_lua: callee index, argument count, then generated values."""
    dev = bytes([0, 1, 11, 0, 2, 5])      # vfu.device(base with name = int)
    dev_ok = bytes([0, 1, 11, 200, 0])    # vfu.device(base, harmless field)
    listen = bytes([7, 1])
    methods = (bytes([11, 2, 3, 0, 3, 2]) +          # config_read(0, 4)
               bytes([12, 3, 3, 0, 3, 1, 3, 4]) +     # config_write(...)
               bytes([13, 3, 5, 12, 3, 0, 3, 4]) +   # mem_read(bar0, 0, 4)
               bytes([9, 1, 3, 0]) + bytes([18, 0]))
    timer = bytes([1, 2, 3, 1, 9, 2]) + bytes([21, 0]) + bytes([20, 0])
    return {
        "device": dev_ok + methods + bytes([19, 0]),
        "listen": dev_ok + listen + methods + bytes([8, 0]) + bytes([19, 0]),
        "badspec": dev + bytes([0, 1, 8, 3, 11, 3, 0, 12, 2, 7]),
        "timer": timer,
        "misc": bytes([3, 2, 6, 3, 65, 66, 67, 5, 66]) + bytes([6, 1, 5, 71]) +
                bytes([4, 0, 5, 0]),
    }


def main():
    for name, sess in sessions().items():
        path = os.path.join(here, "corpus", "session", name)
        with open(path, "wb") as f:
            f.write(sess.buf)
    docs = {
        "qemu": QEMU_HELLO,
        "empty": b"{}\0",
        "twin": b'{"capabilities":{"twin_socket":{"supported":true}}}\0',
        "bad-type": b'{"capabilities":{"pgsizes":true}}\0',
        "big": b'{"capabilities":{"max_data_xfer_size":18446744073709551615}}\0',
    }
    for name, doc in docs.items():
        with open(os.path.join(here, "corpus", "version", name), "wb") as f:
            f.write(doc)
    cfg = {
        "header": b"".join(struct.pack("<HBB", o, 3, 0xff) for o in range(0, 64, 4)),
        "bars": b"".join(struct.pack("<HBB", 0x10 + 4 * i, 0x83, 0xff) for i in range(6)),
        "caps": b"".join(struct.pack("<HBB", o, 0x81, 0x55) for o in range(0x40, 0x100, 2)),
        "ext": b"".join(struct.pack("<HBB", o, 0x83, 0xaa) for o in range(0x100, 0x140, 4)),
    }
    for name, data in cfg.items():
        with open(os.path.join(here, "corpus", "config", name), "wb") as f:
            f.write(data)


def write_more():
    for target, seeds in (("dma", dma_seeds()), ("migration", migration_seeds()),
                          ("lua", lua_seeds())):
        d = os.path.join(here, "corpus", target)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    write_more()
    main()
