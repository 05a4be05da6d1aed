#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (c) 2026 the vfu authors.
"""Write the seeds of fuzz_fds: sessions of steps (see fuzz_fds.c) that map
memfds and plain files and truncate them, hand pipes and saturated eventfds over as
interrupts, and send more fds than allowed. Writes into corpus/fds/."""
import os
import struct

from make_seeds import DMA_MAP, DMA_UNMAP, SET_IRQS, READ, Session

here = os.path.dirname(os.path.abspath(__file__))
MEMFD_SEALED, MEMFD, EVENTFD, EVENTFD_FULL, PIPE_W, PIPE_R, SPARSE, NULL, PLAIN = range(9)
RW = 3
EVENTFD_TRIGGER = (1 << 2) | (1 << 5)


def msg(cmd, payload=b"", kinds=()):
    raw = Session().msg(cmd, payload).buf
    return (struct.pack("<BHB", 0, len(raw), len(kinds)) + bytes(kinds) + raw)


def hello():
    raw = Session().version().buf
    return struct.pack("<BHB", 0, len(raw), 0) + raw


def dma_map(iova, size, kinds=(MEMFD_SEALED,), offset=0):
    return msg(DMA_MAP, struct.pack("<IIQQQ", 32, RW, offset, iova, size), kinds)


def truncate(memfd, size):
    return struct.pack("<BBI", 1, memfd, size)


def seal(memfd):
    return struct.pack("<BB", 2, memfd)


def dma(iova, length):
    return struct.pack("<BQH", 3, iova, length - 1)


def irqs(index, count, kinds):
    return msg(SET_IRQS, struct.pack("<IIIII", 20, EVENTFD_TRIGGER, index, 0, count),
               kinds)


def seeds():
    return {
        "truncate-unsealed": hello() + dma_map(0x100000, 0x10000, (MEMFD,)) +
            dma(0x100000, 4096) + truncate(0, 0) + dma(0x100000, 0x10000) +
            msg(DMA_UNMAP, struct.pack("<IIQQ", 24, 0, 0x100000, 0x10000)),
        "truncate-plain": hello() + dma_map(0x400000, 0x10000, (PLAIN,)) +
            dma(0x400000, 4096) + truncate(0, 4096) + dma(0x400000, 0x10000) +
            msg(DMA_UNMAP, struct.pack("<IIQQ", 24, 0, 0x400000, 0x10000)) +
            dma(0x400000, 8),
        "truncate-sealed": hello() + dma_map(0x200000, 0x4000) + truncate(0, 4096) +
            dma(0x200000, 0x4000) + seal(0) + dma(0x203000, 8),
        "sparse": hello() + dma_map(0x1000000, 4096, (SPARSE,), offset=1 << 39) +
            dma(0x1000000, 4096) + truncate(0, 0) + dma(0x1000000, 1),
        "irq-pipes": hello() + irqs(0, 1, (PIPE_W,)) + irqs(1, 2, (PIPE_R, EVENTFD)) +
            irqs(4, 1, (NULL,)),
        "irq-full": hello() + irqs(0, 1, (EVENTFD_FULL,)) +
            irqs(2, 3, (EVENTFD_FULL, EVENTFD, EVENTFD_FULL)) +
            msg(READ, struct.pack("<QII", 0, 2, 4)),
        "too-many-fds": hello() + dma_map(0x300000, 4096, (MEMFD_SEALED,) * 17) +
            irqs(2, 19, (EVENTFD,) * 19) + dma(0x300000, 4096),
        "before-hello": dma_map(0x100000, 4096, (MEMFD,)) + truncate(0, 0) + hello() +
            dma(0x100000, 4096),
    }


def main():
    d = os.path.join(here, "corpus", "fds")
    os.makedirs(d, exist_ok=True)
    for name, data in seeds().items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
