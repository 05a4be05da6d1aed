/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * What dma_table.c (the map table), dma.c (DMA_MAP/UNMAP), sgl.c
 * (scatter/gather), dma_msg.c (client memory by message) and dirty.c
 * (dirty page logging) share. The table and
 * the log are usable on their own so that the unit tests can drive them
 * without a socket.
 */
#ifndef VFU_DMA_INTERNAL_H
#define VFU_DMA_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "private.h"

/* Members as in libvfio-user's dma_sg_t, so sizes and meaning match. */
struct dma_sg {
    vfu_dma_addr_t dma_addr;    /* IOVA base of the map the entry lies in */
    int region;                 /* slot of that map in the table */
    uint64_t length;
    uint64_t offset;            /* from dma_addr */
    bool writeable;
};

/*
 * A backing file, shared by every map that uses it: one mmap() of it, or
 * for VFIO_USER_F_DMA_REGION_FILE_IO maps one dup() of the client's fd,
 * reached with pread()/pwrite() and never mapped.
 *
 * A map running past the end of a regular file gets a mapping of its own
 * instead (unshared): the file's pages, then private anonymous memory for
 * the pages past its end (anon bytes), so that the device can touch the
 * whole map without SIGBUS. Those pages are the server's: the client never
 * sees what is written there.
 */
struct dma_file {
    dev_t dev;
    ino_t ino;
    int prot;
    int fd;                     /* FILE_IO: our dup; else -1 */
    bool shared;                /* findable by dev/ino: the file's mapping
                                 * for maps that fall inside it */
    char *base;                 /* NULL for FILE_IO */
    uint64_t base_off;          /* file offset of base[0] */
    size_t size;
    size_t page_size;
    size_t anon;                /* bytes at the end of base not from the file */
    uint64_t file_end;          /* the file's size when last mapped; devices:
                                 * UINT64_MAX (no size known) */
    uint32_t refcnt;            /* maps using it */
    int guard;                  /* dma_guard id (a file we can't seal), or 0 */
};

/* What the callbacks are told is made when they are called. */
struct dma_map {
    uint64_t iova;
    uint64_t last;              /* iova + size - 1: a map may end at 2^64 */
    uint32_t prot;              /* PROT_READ / PROT_WRITE */
    uint32_t slot;
    struct dma_file *file;      /* NULL: reached through messages only */
    uint64_t file_off;          /* file offset of iova */
    bool by_msg;                /* came with an fd not safe to map (a memfd
                                 * not sealed against shrinking) */
};

/*
 * What scatter/gather touches of a map, 32 bytes in a cache-line aligned
 * array indexed by slot: with tens of thousands of maps, random lookups
 * then touch one line here instead of chasing the bigger dma_map structs.
 * Read-only between DMA_MAP/UNMAPs, so lookups from any thread share it.
 */
struct dma_slot {
    uint64_t iova;
    uint64_t last;
    char *vaddr;                /* NULL: reached through messages only */
    uint32_t prot;              /* 0: the slot is free */
    uint32_t pad;
};
_Static_assert(sizeof(struct dma_slot) == 32, "two slots per cache line");

/*
 * The lookup index: a B+-tree of map start addresses, fanout DMA_BLOCK.
 * Every node, leaf or inner, starts with the same header of DMA_BLOCK
 * sorted keys (unused ones UINT64_MAX, so that a search can halve over
 * all of them without looking at n), and an inner node's key[i] is exactly
 * the smallest key under child[i]. A change moves at most a node's worth
 * of entries on each level: see dma_table.c.
 */
#define DMA_BLOCK 64u

struct dma_keys {
    uint64_t key[DMA_BLOCK];    /* ascending */
    uint32_t n;
};

/* A leaf: keys and the slots of their maps. */
struct dma_block {
    struct dma_keys k;
    uint32_t slot[DMA_BLOCK];
};

/* An inner node: the least key of each child, and the child. */
struct dma_node {
    struct dma_keys k;
    void *child[DMA_BLOCK];     /* struct dma_block * one level up from
                                 * the leaves, else struct dma_node * */
};

/* Inner levels a tree can have: see idx_reserve(). */
#define DMA_MAX_HEIGHT 8u

struct dma_table {
    struct dma_map **maps;      /* slot -> map, NULL when free */
    struct dma_slot *slots;     /* slot -> hot copy of the map */
    uint32_t nr_slots;
    uint32_t *free_slots;       /* stack of free slot numbers */
    uint32_t nr_free;
    uint32_t nr_maps;
    void *root;                 /* a leaf when height is 0; NULL: empty */
    uint32_t height;            /* inner levels above the leaves */
    uint32_t nr_leaves, nr_nodes;
    /* Allocated ahead so that an insertion can't fail halfway. */
    struct dma_block *spare_leaf;
    struct dma_node *spare_node[DMA_MAX_HEIGHT + 1];
    uint32_t nr_spare_nodes;
    uint64_t idx_moved;         /* index entries ever copied or shifted: the
                                 * tests bound what one change costs */
    /*
     * The translation cache: 4 KiB page of an address (hashed) -> the slot
     * of the map it was last found in; 16-bit entries while the slots fit,
     * 32-bit ones past 65,536 slots. Only a guess, checked against the
     * slot on every use, so it needs no invalidation: a freed or reused
     * slot simply fails the check, and an entry never written guesses slot
     * 0. Written by any looking-up thread (relaxed atomics); resized only
     * by DMA_MAP, while quiesced.
     */
    union {
        _Atomic uint16_t *tlb;  /* up to 65,536 slots: 512 KiB, in L2 */
        _Atomic uint32_t *tlb32; /* beyond: one entry a map, 4 bytes each */
    };
    bool tlb_wide;
    uint32_t tlb_shift;         /* 64 - log2(entries) */
    void *files;                /* tsearch(3) tree of shared dma_files */
    uint32_t nr_files;
    uint64_t anon_bytes;        /* sum of dma_file.anon: server memory that
                                 * backs maps past the end of their files */
};

/* dma_table.c: the table on its own. */
/*
 * The SIGBUS guard (dma_guard.c) of mappings of files a client could shrink
 * under us. dma_guard_add() registers [base, base + size) of owner's and
 * returns its id (> 0), or -1 (ENOSPC: too many, ENOMEM); remove it before
 * unmapping. dma_guard_hits() returns how many pages of owner's mappings
 * were replaced by zeros since the last call (*seen: the caller's own
 * cursor, 0 at first; cheap when nothing happened anywhere).
 */
int dma_guard_add(const void *owner, void *base, size_t size, size_t page_size,
                  int prot);
void dma_guard_remove(int id);
unsigned long dma_guard_hits(const void *owner, unsigned long *seen);

struct dma_table *dma_table_new(void);
/* Unmap and free everything, without callbacks. */
void dma_table_destroy(struct dma_table *t);
/*
 * Add [iova, iova + size): fd < 0 for a message-only map, else mmap()ed
 * (the fd is not kept; only the pages the map needs), or with file_io
 * reached by pread()/pwrite() on a dup of fd. A memfd not sealed against
 * shrinking is not mapped: the map is message-only, with by_msg set. A regular file may end before the map does: see struct
 * dma_file and dma_map_past_eof(). Returns the new map, or NULL with errno:
 * EINVAL (size 0, wrap, bad prot, fd unusable, a file range past 2^63),
 * EEXIST (overlap), ENOSPC (max maps live), ENOMEM, or mmap()'s or dup()'s
 * error.
 */
struct dma_map *dma_table_insert(struct dma_table *t, uint64_t iova,
                                 uint64_t size, int fd, uint64_t offset,
                                 uint32_t prot, bool file_io,
                                 uint32_t max_maps);
/* dma_table_insert() of a map that is mmap()ed if it has an fd. */
static inline struct dma_map *
dma_table_add(struct dma_table *t, uint64_t iova, uint64_t size, int fd,
              uint64_t offset, uint32_t prot, uint32_t max_maps)
{
    return dma_table_insert(t, iova, size, fd, offset, prot, false, max_maps);
}
/* The map exactly [iova, iova + size), or NULL. */
struct dma_map *dma_table_find(struct dma_table *t, uint64_t iova,
                               uint64_t size);
/*
 * Bytes at the end of m that lie past the end of its file (as it was when
 * last mapped), 0 for most maps. Mapped maps have private memory there,
 * FILE_IO maps fail accesses there with EFAULT.
 */
uint64_t dma_map_past_eof(const struct dma_map *m);
/* What the DMA callbacks are told about m. */
void dma_map_info(const struct dma_map *m, vfu_dma_info_t *info);
/* Unlink and free a map returned by the table. */
void dma_table_del(struct dma_table *t, struct dma_map *m);
/* The map containing addr, or NULL. Lock-free: see sgl.c. */
struct dma_map *dma_table_lookup(struct dma_table *t, uint64_t addr);
/* The map containing addr, else the first one above it, or NULL. */
struct dma_map *dma_table_next(struct dma_table *t, uint64_t addr);
/* Does a map overlap [iova, last]? */
bool dma_table_overlaps(struct dma_table *t, uint64_t iova, uint64_t last);
/* Any map (the lowest), or NULL when empty: for tearing everything down. */
struct dma_map *dma_table_any(struct dma_table *t);
/* The live map in slot, or NULL. */
struct dma_map *dma_table_slot(struct dma_table *t, int slot);
/* The translation cache entry for addr. */
static inline uint32_t
dma_tlb_index(const struct dma_table *t, uint64_t addr)
{
    /* Fibonacci hashing of the 4 KiB page number: neighbours spread out. */
    return (uint32_t)(((addr >> 12) * 0x9e3779b97f4a7c15ull) >> t->tlb_shift);
}

/* dma_table_lookup_slot() past a miss in the translation cache. */
struct dma_slot *dma_table_lookup_index(struct dma_table *t, uint64_t addr);

/*
 * The hot entry of the map containing addr, or NULL (the fast path of
 * dma_table_lookup): inline, because scatter/gather calls it per access.
 */
static inline struct dma_slot *
dma_table_lookup_slot(struct dma_table *t, uint64_t addr)
{
    if (t->tlb != NULL) {
        uint32_t i = dma_tlb_index(t, addr);
        uint32_t slot = t->tlb_wide
            ? atomic_load_explicit(&t->tlb32[i], memory_order_relaxed)
            : atomic_load_explicit(&t->tlb[i], memory_order_relaxed);
        /* A free slot has iova 1 > last 0, so it never matches. */
        if (slot < t->nr_slots) {
            struct dma_slot *s = &t->slots[slot];
            if (addr >= s->iova && addr <= s->last) {
                return s;
            }
        }
    }
    return dma_table_lookup_index(t, addr);
}
/* Bytes of heap the table uses (for the scale figures). */
size_t dma_table_mem(const struct dma_table *t);
/*
 * Check the index against its invariants (for the tests, O(n)): 0, or -1
 * with a line on stderr saying what is wrong.
 */
int dma_table_check(const struct dma_table *t);

/*
 * dirty.c. A log covers the IOVA ranges given at START, rounded out to its
 * page size and merged; one bit per page, set with atomic fetch-or and
 * taken with atomic fetch-and, so a page written during a report shows up
 * in this report or the next.
 */
struct dirty_range {
    uint64_t start;             /* page aligned */
    uint64_t pages;
    _Atomic uint64_t *bits;
};

struct dirty_bits {
    uint64_t pgsize;
    struct dirty_range *ranges; /* sorted, disjoint */
    uint32_t nr_ranges;
    bool all;                   /* START without ranges: every map, those
                                 * added later too (dirty_log_map()) */
};

struct dirty_range_req {
    uint64_t iova;
    uint64_t length;
};

/* Build a log; NULL with errno EINVAL (bad page size, range, overlap) or
 * E2BIG (bitmaps would exceed max_bytes) or ENOMEM. */
struct dirty_bits *dirty_bits_new(uint64_t pgsize,
                                const struct dirty_range_req *req,
                                uint32_t nr, uint64_t max_bytes);
void dirty_bits_free(struct dirty_bits *log);
/* Mark [iova, iova + len) dirty where it is logged. */
void dirty_bits_mark(struct dirty_bits *log, uint64_t iova, uint64_t len);
/* Bytes of bitmap a report of length at pgsize needs (u64 words). */
uint64_t dirty_bitmap_bytes(uint64_t length, uint64_t pgsize);
/*
 * Read and clear [iova, iova + len) into out (dirty_bitmap_bytes() long,
 * zeroed here). Log pages only partly inside the range are reported but
 * kept. -1/EINVAL if the range is not wholly logged or pgsize is bad.
 */
int dirty_bits_report(struct dirty_bits *log, uint64_t iova, uint64_t len,
                     uint64_t pgsize, uint64_t *out);

/* The per-context state: the current log, published to device threads. */
struct dirty_log {
    _Atomic(struct dirty_bits *) bits;
    atomic_uint users;          /* device threads inside dirty_mark() */
    void *reply;                /* REPLY buffer of the last report */
    size_t reply_size;
    uint64_t asked_pgsize;      /* what the running log's START asked for */
};

/* dirty_mark() once a log exists. */
void dirty_mark_logged(struct dirty_log *d, uint64_t iova, uint64_t len);

/* Mark IOVA range dirty if logging (any thread); inline for the common
 * case of not logging. */
static inline void
dirty_mark(vfu_ctx_t *ctx, uint64_t iova, uint64_t len)
{
    struct dirty_log *d = ctx->dirty;

    if (d != NULL && atomic_load_explicit(&d->bits, memory_order_relaxed) != NULL) {
        dirty_mark_logged(d, iova, len);
    }
}
/*
 * A map of [iova, iova + len) is about to be added (loop thread): a log of
 * all maps must cover it from now on, or the device's writes there would
 * be lost to migration. 0, or -1 with errno (ENOMEM, E2BIG: the bitmaps
 * would exceed the limit) when it cannot be logged.
 */
int dirty_log_map(vfu_ctx_t *ctx, uint64_t iova, uint64_t len);
/* Stop logging and free the log (loop thread). */
void dirty_stop(vfu_ctx_t *ctx);
/* Free all dirty state (ctx teardown). */
void dirty_free(vfu_ctx_t *ctx);

/* dma_msg.c: read or write [addr, addr + len) of client memory with
 * VFIO_USER_DMA_READ/WRITE messages. Returns 0 or -1 with errno. */
int dma_by_message(vfu_ctx_t *ctx, uint64_t addr, uint64_t len, char *data,
                   bool is_write);

#endif /* VFU_DMA_INTERNAL_H */
