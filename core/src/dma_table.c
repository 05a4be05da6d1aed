/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * The DMA map table: each map in a numbered slot that scatter/gather
 * entries refer to, the slots sorted by IOVA in a B+-tree (lookups, maps
 * and unmaps O(log n) in the worst case: a change moves at most a few
 * nodes of 64 entries on each level) and a translation cache for lookups.
 * Backing files are mmap()ed only where maps need them, and a mapping is
 * shared by the maps into the same part of a file: QEMU sends the same
 * memfd with each map, at that map's offset (file_get()). A map running
 * past the end of its file gets a mapping of its own, part file and part
 * private memory (file_map_past_eof()). A memfd that its owner could
 * shrink under us is not mapped at all (file_may_shrink()). The protocol
 * around it is dma.c.
 */

#include <fcntl.h>
#include <search.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dma_internal.h"

static uint64_t
host_page_size(void)
{
    long pg = sysconf(_SC_PAGESIZE);

    return pg > 0 ? (uint64_t)pg : 4096;
}

/* ---- backing files ---- */

static int
file_cmp(const void *a, const void *b)
{
    const struct dma_file *x = a, *y = b;

    if (x->dev != y->dev) {
        return x->dev < y->dev ? -1 : 1;
    }
    if (x->ino != y->ino) {
        return x->ino < y->ino ? -1 : 1;
    }
    if ((x->fd >= 0) != (y->fd >= 0)) {
        return x->fd >= 0 ? 1 : -1;     /* FILE_IO apart from mappings */
    }
    return x->prot - y->prot;
}

static void
file_put(struct dma_table *t, struct dma_file *f)
{
    if (--f->refcnt > 0) {
        return;
    }
    if (f->shared) {
        tdelete(f, &t->files, file_cmp);
        t->nr_files--;
    }
    t->anon_bytes -= f->anon;
    dma_guard_remove(f->guard);
    if (f->base != NULL) {
        munmap(f->base, f->size);
    }
    if (f->fd >= 0) {
        close(f->fd);
    }
    free(f);
}

/* The page size of a mapping of st's file. */
static uint64_t
file_page_size(const struct stat *st)
{
    uint64_t pg = host_page_size(), blk = (uint64_t)st->st_blksize;

    /* Huge page backed files report their page size here. */
    if (st->st_blksize > 0 && (blk & (blk - 1)) == 0 && blk > pg) {
        pg = blk;
    }
    return pg;
}

/*
 * [off, off + len) of fd mmap()ed, or for file_io fd dup()ed (with len the
 * size it is known to have).
 */
static struct dma_file *
file_map(int fd, uint64_t off, uint64_t len, int prot, bool file_io,
         const struct stat *st)
{
    struct dma_file *f = calloc(1, sizeof(*f));
    void *p = NULL;
    int dfd = -1;

    if (f == NULL) {
        return NULL;
    }
    if (file_io) {
        dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    } else {
        p = mmap(NULL, len, prot, MAP_SHARED, fd, (off_t)off);
    }
    if (p == MAP_FAILED || (file_io && dfd < 0)) {
        int saved = errno;
        free(f);
        errno = saved;
        return NULL;
    }
    f->dev = st->st_dev;
    f->ino = st->st_ino;
    f->prot = prot;
    f->fd = dfd;
    f->base = p;
    f->base_off = off;
    f->size = len;
    f->page_size = file_page_size(st);
    f->file_end = S_ISREG(st->st_mode) ? (uint64_t)st->st_size : UINT64_MAX;
    f->refcnt = 1;
    return f;
}

/*
 * A mapping of its own for a map of [off, off + len) of regular file fd
 * that runs past the file's end (off + len <= INT64_MAX): the file's pages
 * mapped shared as usual, then private anonymous ones up to the end of the
 * map, in one contiguous range. mmap()ing the file there instead would
 * mean SIGBUS when the device touches a page past its end.
 *
 * The range is first reserved with PROT_NONE (which commits no memory),
 * aligned to the file's page size for huge page files, then both parts are
 * mapped over it with MAP_FIXED. The private part is charged to the server
 * like any allocation of its own (so the kernel's overcommit policy may
 * refuse a huge one with ENOMEM), though pages only use memory once
 * written.
 */
static struct dma_file *
file_map_past_eof(struct dma_table *t, int fd, uint64_t off, uint64_t len,
                  int prot, const struct stat *st)
{
    uint64_t pg = file_page_size(st), host = host_page_size();
    uint64_t start = off & ~(pg - 1);
    uint64_t end = (off + len + pg - 1) & ~(pg - 1);
    /* The file's last page, even if partly past its end, is whole in the
     * page cache; host pages past it are not (a huge page file's size is a
     * multiple of its page). */
    uint64_t fend = ((uint64_t)st->st_size + host - 1) & ~(host - 1);
    uint64_t in_file = fend > start ? (fend < end ? fend : end) - start : 0;
    uint64_t win = end - start, slack = pg > host ? pg : 0;
    struct dma_file *f;
    char *p, *base;

    if (win > SIZE_MAX - slack) {
        errno = EINVAL;
        return NULL;
    }
    f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return NULL;
    }
    p = mmap(NULL, win + slack, PROT_NONE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        goto fail;
    }
    base = (char *)(((uintptr_t)p + pg - 1) & ~(uintptr_t)(pg - 1));
    if (base > p) {
        munmap(p, (size_t)(base - p));
    }
    if (slack > (uint64_t)(base - p)) {
        munmap(base + win, slack - (size_t)(base - p));
    }
    if ((in_file > 0 &&
         mmap(base, in_file, prot, MAP_SHARED | MAP_FIXED, fd,
              (off_t)start) == MAP_FAILED) ||
        mmap(base + in_file, win - in_file, prot,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) {
        int saved = errno;
        munmap(base, win);
        errno = saved;
        goto fail;
    }
    f->dev = st->st_dev;
    f->ino = st->st_ino;
    f->prot = prot;
    f->fd = -1;
    f->base = base;
    f->base_off = start;
    f->size = win;
    f->page_size = pg;
    f->anon = win - in_file;
    f->file_end = (uint64_t)st->st_size;
    f->refcnt = 1;
    t->anon_bytes += f->anon;
    return f;

fail:
    {
        int saved = errno;
        free(f);
        errno = saved;
    }
    return NULL;
}

/*
 * Could fd's owner make the file shorter under a mapping of it? A page of
 * a shared mapping past the end of its file raises SIGBUS when touched:
 *
 *  - a file sealed with F_SEAL_SHRINK can't shrink, and is mapped;
 *  - a memfd without that seal is not mapped: the map is reached by
 *    DMA_READ/WRITE messages, where a shrunk file is the client's problem
 *    (QEMU's memory-backend-memfd seals by default, seal=on), and a client
 *    that wants maps with a vaddr has the means to have them;
 *  - any other file cannot be sealed at all (a file on a disk filesystem,
 *    a tmpfs or hugetlbfs file opened by name), and clients (libvfio-user's
 *    own tests, QEMU's memory-backend-file) rely on its maps having a
 *    vaddr: it is mapped, under the SIGBUS guard (dma_guard.c).
 *
 * memfds are told by their name in /proc (memfd_create() names them
 * "memfd:NAME"), as they may have been created without MFD_ALLOW_SEALING
 * and then look like any tmpfs file to F_GET_SEALS. Without /proc mounted
 * a memfd is taken as any other file.
 */
enum file_shrink {
    FILE_SEALED,
    FILE_UNSEALED_MEMFD,
    FILE_UNSEALABLE,
};

static enum file_shrink
file_may_shrink(int fd)
{
    char path[32], name[8];
    int seals = fcntl(fd, F_GET_SEALS);
    ssize_t n;

    if (seals >= 0 && (seals & F_SEAL_SHRINK)) {
        return FILE_SEALED;
    }
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    n = readlink(path, name, sizeof(name));
    return n >= 7 && memcmp(name, "/memfd:", 7) == 0 ? FILE_UNSEALED_MEMFD
                                                      : FILE_UNSEALABLE;
}

/*
 * A new mapping f of a file that can shrink, put under the SIGBUS guard.
 * When the guard has no room left, the mapping is given up and the map
 * goes by messages (*by_msg set, NULL returned with errno 0).
 */
static struct dma_file *
file_guard(struct dma_table *t, struct dma_file *f, bool *by_msg)
{
    int id;

    if (f == NULL) {
        return NULL;
    }
    id = dma_guard_add(t, f->base, f->size, f->page_size, f->prot);
    if (id > 0) {
        f->guard = id;
        return f;
    }
    file_put(t, f);
    *by_msg = true;
    errno = 0;
    return NULL;
}

/*
 * The shared mapping f of a file, replaced by one of [start, end) as well:
 * worth it while the gap between them is no bigger than what they hold, so
 * that maps far apart in a huge sparse file never map what lies between
 * them. The new one covers at least twice the old size (up to the end of
 * the file, fend), so that maps arriving one after another (65,535 of them
 * in QEMU's worst case) make a logarithmic number of mappings, not one
 * each. Returns false (and sets nothing) when not worth it.
 */
static bool
file_grow_range(const struct dma_file *f, uint64_t start, uint64_t end,
                uint64_t fend, uint64_t *nstart, uint64_t *nend)
{
    uint64_t lo = start < f->base_off ? start : f->base_off;
    uint64_t hi = end > f->base_off + f->size ? end : f->base_off + f->size;

    if (hi - lo > 2 * ((end - start) + f->size)) {
        return false;
    }
    if (hi - lo < 2 * (uint64_t)f->size) {
        hi = lo + 2 * (uint64_t)f->size;
        hi = hi < fend ? hi : fend;
        hi = hi > end ? hi : end;
    }
    if (hi - lo > SIZE_MAX) {
        return false;
    }
    *nstart = lo;
    *nend = hi;
    return true;
}

/*
 * Find or make the mapping that holds [off, off + len) of fd. *base_off is
 * set to the file offset of the mapping's first byte. *by_msg is set (and
 * NULL returned, errno 0) for a file that must not be mapped.
 */
static struct dma_file *
file_get(struct dma_table *t, int fd, uint64_t off, uint64_t len, int prot,
         bool file_io, uint64_t *base_off, bool *by_msg)
{
    struct dma_file key, *f, **slot;
    struct stat st;
    uint64_t pg = host_page_size(), start, end, fend;
    enum file_shrink shrink;
    int fl = fcntl(fd, F_GETFL);

    *by_msg = false;
    if (fl < 0 || fstat(fd, &st) < 0) {
        errno = EINVAL;
        return NULL;
    }
    if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) {
        errno = EINVAL;         /* pipes, sockets, directories */
        return NULL;
    }
    /* mmap() would check this, but a shared mapping may already exist. */
    if ((fl & O_ACCMODE) == O_WRONLY ||
        ((prot & PROT_WRITE) && (fl & O_ACCMODE) != O_RDWR)) {
        errno = EACCES;
        return NULL;
    }
    if (!S_ISREG(st.st_mode) && file_io) {
        /* A device has no useful size: its own dup, unshared. */
        if (off > (uint64_t)INT64_MAX || len - 1 > (uint64_t)INT64_MAX - off) {
            errno = EINVAL;
            return NULL;
        }
        *base_off = 0;
        return file_map(fd, 0, off + len, prot, true, &st);
    }
    if (!S_ISREG(st.st_mode)) {
        /* A device has no useful size: map just the window, unshared. */
        start = off & ~(pg - 1);
        end = off + len;
        if (end > UINT64_MAX - (pg - 1) || start > (uint64_t)INT64_MAX) {
            errno = EINVAL;
            return NULL;
        }
        end = (end + pg - 1) & ~(pg - 1);
        f = file_map(fd, start, end - start, prot, false, &st);
        *base_off = start;
        return f;
    }
    /* File offsets are off_t: past 2^63 is not a place in any file. */
    if (off > (uint64_t)INT64_MAX || len > (uint64_t)INT64_MAX - off) {
        errno = EINVAL;
        return NULL;
    }
    shrink = file_io ? FILE_SEALED : file_may_shrink(fd);
    if (shrink == FILE_UNSEALED_MEMFD) {
        *by_msg = true;
        errno = 0;
        return NULL;
    }
    if (off + len > (uint64_t)st.st_size && !file_io) {
        /*
         * Past the end of the file (a file of size 0 included): a mapping
         * of its own, private past the end. A shared mapping can't be
         * used for it, as it would have to be contiguous with that
         * private memory. FILE_IO maps just fail accesses past the end.
         */
        f = file_map_past_eof(t, fd, off, len, prot, &st);
        if (shrink == FILE_UNSEALABLE) {
            f = file_guard(t, f, by_msg);
        }
        *base_off = f != NULL ? f->base_off : 0;
        return f;
    }
    key.dev = st.st_dev;
    key.ino = st.st_ino;
    key.prot = prot;
    key.fd = file_io ? 0 : -1;
    slot = tfind(&key, &t->files, file_cmp);
    if (file_io) {
        *base_off = 0;
        if (slot != NULL) {
            /* Nothing is mapped: a grown file just needs the size noted. */
            if ((*slot)->size < (uint64_t)st.st_size) {
                (*slot)->size = st.st_size;
                (*slot)->file_end = st.st_size;
            }
            (*slot)->refcnt++;
            return *slot;
        }
        f = file_map(fd, 0, st.st_size, prot, true, &st);
    } else {
        /*
         * Only the pages this map needs (in the file's page size, which
         * mmap() needs the offset aligned to), or a shared mapping that
         * holds them: a 4 KiB map of a 64 TiB sparse memfd maps 4 KiB.
         */
        uint64_t fpg = file_page_size(&st);

        start = off & ~(fpg - 1);
        end = (off + len + fpg - 1) & ~(fpg - 1);
        fend = ((uint64_t)st.st_size + fpg - 1) & ~(fpg - 1);
        if (slot != NULL && start >= (*slot)->base_off &&
            end <= (*slot)->base_off + (*slot)->size) {
            (*slot)->refcnt++;
            *base_off = (*slot)->base_off;
            return *slot;
        }
        if (slot != NULL &&
            !file_grow_range(*slot, start, end, fend, &start, &end)) {
            /* Far from the shared one: a mapping of this map's own. */
            f = file_map(fd, start, end - start, prot, false, &st);
            if (shrink == FILE_UNSEALABLE) {
                f = file_guard(t, f, by_msg);
            }
            *base_off = start;
            return f;
        }
        f = file_map(fd, start, end - start, prot, false, &st);
        if (shrink == FILE_UNSEALABLE) {
            f = file_guard(t, f, by_msg);
        }
    }
    if (f == NULL) {
        return NULL;
    }
    *base_off = f->base_off;
    if (slot != NULL) {
        /* Outgrown: the old mapping lives on for its maps only. */
        struct dma_file *old = *slot;
        tdelete(old, &t->files, file_cmp);
        old->shared = false;
        t->nr_files--;
    }
    if (tsearch(f, &t->files, file_cmp) == NULL) {
        f->shared = false;
        file_put(t, f);
        errno = ENOMEM;
        return NULL;
    }
    f->shared = true;
    t->nr_files++;
    return f;
}

/* ---- the lookup index ---- */

/*
 * A B+-tree of fanout DMA_BLOCK (64) over the maps' start addresses, the
 * leaves holding slot numbers. It replaces a two-level index (sorted
 * blocks plus one flat array of their first keys) whose every block split
 * or merge shifted that flat array and its block pointers: up to n/16
 * entries, tens of thousands at a million maps. Here a change touches one
 * node or two on each level:
 *
 *  - a full node splits in two before it takes an entry, its new sibling
 *    going into the parent, which may split in turn, up to a new root;
 *  - a non-root node left with fewer than IDX_MIN entries either merges
 *    with a neighbour (when both fit in half a node) or takes entries from
 *    it until both hold at least IDX_MIN; a root with one child goes.
 *
 * So every non-root node holds IDX_MIN to DMA_BLOCK entries, the height is
 * at most log16(n), and a map or unmap copies or shifts at most a few
 * nodes' worth of entries per level: O(log n) in the worst case, not just
 * on average (t->idx_moved counts them for the tests). An inner node's
 * key[i] is exactly the least key under child[i], so the root's key[0] is
 * the least of all, and a descent that starts at or above it always finds
 * a child whose least key is at or below the address.
 *
 * Lookups: a branch-free halving over the 64 keys of each node on the
 * path, without reading n (keys_le()), each node's key lines (and a
 * leaf's slot lines) prefetched as soon as its address is known, so that
 * the lines of a node that miss come in at once, not one per probe. At
 * 65,535 maps mapped in order that is root, inner node and leaf (the inner
 * levels in 30 KiB); at a million, one inner level more.
 */
#define IDX_MIN (DMA_BLOCK / 4)

_Static_assert(offsetof(struct dma_block, k) == 0 &&
               offsetof(struct dma_node, k) == 0,
               "a node of either kind starts with its keys");

/*
 * Keys of k that are <= key. Unused keys are UINT64_MAX, so a fixed
 * branch-free halving over all DMA_BLOCK keys works without reading n
 * (which lies in a cache line of its own); it touches log2 of the node's
 * key lines. Only key UINT64_MAX would count the padding too: all are <=.
 */
static inline uint32_t
keys_le(const struct dma_keys *k, uint64_t key)
{
    const uint64_t *base = k->key;
    uint32_t n = DMA_BLOCK;

    if (__builtin_expect(key == UINT64_MAX, 0)) {
        return k->n;
    }
    while (n > 1) {
        uint32_t half = n / 2;
        base = base[half] <= key ? base + half : base;
        n -= half;
    }
    return (uint32_t)(base - k->key) + (*base <= key);
}

/*
 * Ask for all of k's key lines at once before searching them: the
 * halving's probes depend on each other, so lines that miss would
 * otherwise come in one after another (a million maps: a lookup that
 * misses the translation cache takes two thirds of the time with this).
 */
static inline void
keys_prefetch(const struct dma_keys *k)
{
    for (uint32_t i = 0; i < DMA_BLOCK; i += 64 / sizeof(k->key[0])) {
        __builtin_prefetch(&k->key[i]);
    }
}

/*
 * The entries of a node of either kind, for the code that moves them:
 * keys, and values of vsz bytes (slots or child pointers).
 */
struct ents {
    struct dma_keys *k;
    char *v;
    size_t vsz;
};

static struct ents
ents_of(void *node, bool leaf)
{
    if (leaf) {
        struct dma_block *b = node;
        return (struct ents){ &b->k, (char *)b->slot, sizeof(b->slot[0]) };
    }
    struct dma_node *d = node;
    return (struct ents){ &d->k, (char *)d->child, sizeof(d->child[0]) };
}

/* Shift entries [from, n) of e by delta places (up or down). */
static void
ents_shift(struct dma_table *t, struct ents e, uint32_t from, int delta)
{
    uint32_t cnt = e.k->n - from;

    memmove(&e.k->key[(int)from + delta], &e.k->key[from], cnt * sizeof(e.k->key[0]));
    memmove(e.v + ((int)from + delta) * e.vsz, e.v + from * e.vsz, cnt * e.vsz);
    t->idx_moved += cnt;
}

/* Copy cnt entries of src from s to dst at d (no overlap). */
static void
ents_copy(struct dma_table *t, struct ents dst, uint32_t d, struct ents src,
          uint32_t s, uint32_t cnt)
{
    memcpy(&dst.k->key[d], &src.k->key[s], cnt * sizeof(src.k->key[0]));
    memcpy(dst.v + d * dst.vsz, src.v + s * src.vsz, cnt * src.vsz);
    t->idx_moved += cnt;
}

/* Keep the padding of the unused keys from n on. */
static void
ents_pad(struct ents e)
{
    for (uint32_t i = e.k->n; i < DMA_BLOCK; i++) {
        e.k->key[i] = UINT64_MAX;
    }
}

/* Put key and the value at val at pos of e (not full). */
static void
ents_insert(struct dma_table *t, struct ents e, uint32_t pos, uint64_t key,
            const void *val)
{
    ents_shift(t, e, pos, 1);
    e.k->key[pos] = key;
    memcpy(e.v + pos * e.vsz, val, e.vsz);
    e.k->n++;
}

static void
ents_remove(struct dma_table *t, struct ents e, uint32_t pos)
{
    ents_shift(t, e, pos + 1, -1);
    e.k->n--;
    e.k->key[e.k->n] = UINT64_MAX;
}

/* Move the first cnt entries of b to the end of a (its left neighbour). */
static void
ents_to_left(struct dma_table *t, struct ents a, struct ents b, uint32_t cnt)
{
    ents_copy(t, a, a.k->n, b, 0, cnt);
    a.k->n += cnt;
    ents_shift(t, b, cnt, -(int)cnt);
    b.k->n -= cnt;
    ents_pad(b);
}

/* Move the last cnt entries of a to the front of b (its right neighbour). */
static void
ents_to_right(struct dma_table *t, struct ents a, struct ents b, uint32_t cnt)
{
    ents_shift(t, b, 0, (int)cnt);
    b.k->n += cnt;
    a.k->n -= cnt;
    ents_copy(t, b, 0, a, a.k->n, cnt);
    ents_pad(a);
}

/*
 * Where a full node splits before taking an entry at pos: in halves, but
 * an entry going in at either end (maps made in ascending or descending
 * order) leaves the node three quarters full, so that a table built in
 * order has fuller leaves; both sides keep at least IDX_MIN.
 */
static uint32_t
split_at(uint32_t pos)
{
    return pos == 0 ? IDX_MIN : pos == DMA_BLOCK ? DMA_BLOCK - IDX_MIN
                                                 : DMA_BLOCK / 2;
}

/* Nodes are cache-line aligned, so a search touches as few lines as can be. */
#define NODE_BYTES(type) ((sizeof(type) + 63) & ~(size_t)63)

static void *
node_alloc(size_t size)
{
    return aligned_alloc(64, (size + 63) & ~(size_t)63);
}

/*
 * Make sure the next idx_insert() needs no memory: in the worst case a
 * leaf and every inner level split, and a new root appears. Every
 * non-root node holds at least IDX_MIN entries and a root at least 2, so
 * a tree of height h holds at least 2 * 16^h keys: with fewer than 2^31
 * slots, h stays below DMA_MAX_HEIGHT.
 */
static int
idx_reserve(struct dma_table *t)
{
    if (t->height + 1 > DMA_MAX_HEIGHT) {
        errno = ENOSPC;         /* not reachable with 2^31 slots */
        return -1;
    }
    if (t->spare_leaf == NULL) {
        t->spare_leaf = node_alloc(sizeof(struct dma_block));
        if (t->spare_leaf == NULL) {
            errno = ENOMEM;
            return -1;
        }
    }
    while (t->nr_spare_nodes < t->height + 1) {
        struct dma_node *d = node_alloc(sizeof(*d));

        if (d == NULL) {
            errno = ENOMEM;
            return -1;
        }
        t->spare_node[t->nr_spare_nodes++] = d;
    }
    return 0;
}

static void *
take_node(struct dma_table *t, bool leaf)
{
    struct dma_keys *k;

    if (leaf) {
        k = &t->spare_leaf->k;
        t->spare_leaf = NULL;
        t->nr_leaves++;
    } else {
        k = &t->spare_node[--t->nr_spare_nodes]->k;
        t->nr_nodes++;
    }
    k->n = 0;
    for (uint32_t i = 0; i < DMA_BLOCK; i++) {
        k->key[i] = UINT64_MAX;
    }
    return k;
}

/* A node out of the tree: kept as a spare if there is room, else freed. */
static void
put_node(struct dma_table *t, void *node, bool leaf)
{
    if (leaf) {
        t->nr_leaves--;
        if (t->spare_leaf == NULL) {
            t->spare_leaf = node;
            return;
        }
    } else {
        t->nr_nodes--;
        if (t->nr_spare_nodes < DMA_MAX_HEIGHT + 1) {
            t->spare_node[t->nr_spare_nodes++] = node;
            return;
        }
    }
    free(node);
}

/* The least key under a node of either kind. */
static inline uint64_t
node_min(const void *node)
{
    return ((const struct dma_keys *)node)->key[0];
}

/*
 * The leaf that would hold key, or NULL if key is below every key; *at is
 * set to the place in it of the last key <= key.
 */
static inline const struct dma_block *
idx_leaf(const struct dma_table *t, uint64_t key, uint32_t *at)
{
    const struct dma_keys *k = t->root;

    if (k == NULL || key < k->key[0]) {
        return NULL;
    }
    /* Every node on the way has a key <= key: its first. */
    for (uint32_t h = t->height; h > 0; h--) {
        k = ((const struct dma_node *)k)->child[keys_le(k, key) - 1];
        keys_prefetch(k);
    }
    if (t->height > 0) {
        /* The slot is read right after: its line comes with the keys'. */
        const struct dma_block *b = (const struct dma_block *)k;

        for (uint32_t i = 0; i < DMA_BLOCK; i += 64 / sizeof(b->slot[0])) {
            __builtin_prefetch(&b->slot[i]);
        }
    }
    *at = keys_le(k, key) - 1;
    return (const struct dma_block *)k;
}

/*
 * Where key is or would go: the inner nodes from the root down and the
 * child taken in each (the first one for a key below everything), the
 * leaf and its keys <= key, and the nearest subtree right of the path,
 * where the next key is when the leaf has none above key.
 */
struct idx_path {
    struct dma_node *node[DMA_MAX_HEIGHT];
    uint32_t at[DMA_MAX_HEIGHT];
    struct dma_block *leaf;     /* NULL: the tree is empty */
    uint32_t le;
    const void *next;           /* or NULL */
    uint32_t next_h;            /* levels above the leaves of next */
};

static void
idx_descend(struct dma_table *t, uint64_t key, struct idx_path *p)
{
    void *node = t->root;

    p->next = NULL;
    for (uint32_t l = 0; l < t->height; l++) {
        struct dma_node *d = node;
        uint32_t c = keys_le(&d->k, key), i = c > 0 ? c - 1 : 0;

        p->node[l] = d;
        p->at[l] = i;
        if (i + 1 < d->k.n) {
            p->next = d->child[i + 1];
            p->next_h = t->height - l - 1;
        }
        node = d->child[i];
        keys_prefetch(node);
    }
    p->leaf = node;
    p->le = node != NULL ? keys_le(&p->leaf->k, key) : 0;
}

/*
 * Put key and the value at val into node (of the kind leaf says) at pos;
 * a full node splits first. Returns its new right neighbour, for the
 * parent to take, or NULL.
 */
static void *
node_insert(struct dma_table *t, void *node, bool leaf, uint32_t pos,
            uint64_t key, const void *val)
{
    struct ents e = ents_of(node, leaf);
    void *right = NULL;

    if (e.k->n == DMA_BLOCK) {
        uint32_t h = split_at(pos);
        struct ents r;

        right = take_node(t, leaf);
        r = ents_of(right, leaf);
        ents_copy(t, r, 0, e, h, DMA_BLOCK - h);
        r.k->n = DMA_BLOCK - h;
        e.k->n = h;
        ents_pad(e);
        if (pos > h) {
            e = r;
            pos -= h;
        }
    }
    ents_insert(t, e, pos, key, val);
    return right;
}

/*
 * Add key (not present) where idx_descend() found it goes, the tree
 * unchanged since; idx_reserve() succeeded before.
 */
static void
idx_insert(struct dma_table *t, const struct idx_path *p, uint64_t key,
           uint32_t slot)
{
    struct dma_block *b;
    void *right;

    if (t->root == NULL) {
        b = take_node(t, true);
        ents_insert(t, ents_of(b, true), 0, key, &slot);
        t->root = b;
        return;
    }
    right = node_insert(t, p->leaf, true, p->le, key, &slot);
    for (uint32_t l = t->height; l-- > 0;) {
        struct dma_node *d = p->node[l];
        uint32_t i = p->at[l];

        /* The child may have a new least key: it took key at its front. */
        d->k.key[i] = node_min(d->child[i]);
        if (right != NULL) {
            void *r = right;
            right = node_insert(t, d, false, i + 1, node_min(r), &r);
        }
    }
    if (right != NULL) {
        /* The root split: a new root above both halves. */
        struct dma_node *d = take_node(t, false);
        void *old = t->root;

        ents_insert(t, ents_of(d, false), 0, node_min(old), &old);
        ents_insert(t, ents_of(d, false), 1, node_min(right), &right);
        t->root = d;
        t->height++;
    }
}

/*
 * Child i of d (of the kind leaf says) has fallen below IDX_MIN entries:
 * merge it with a neighbour if both fit in half a node, else even the two
 * out, which leaves both with at least IDX_MIN.
 */
static void
idx_rebalance(struct dma_table *t, struct dma_node *d, uint32_t i, bool leaf)
{
    uint32_t j = i + 1 < d->k.n ? i : i - 1;    /* the pair j, j + 1 */
    struct ents a = ents_of(d->child[j], leaf), b = ents_of(d->child[j + 1], leaf);

    if (a.k->n + b.k->n <= DMA_BLOCK / 2) {
        void *gone = d->child[j + 1];

        ents_to_left(t, a, b, b.k->n);
        ents_remove(t, ents_of(d, false), j + 1);
        put_node(t, gone, leaf);
    } else {
        if (a.k->n < b.k->n) {
            ents_to_left(t, a, b, (b.k->n - a.k->n) / 2);
        } else {
            ents_to_right(t, a, b, (a.k->n - b.k->n) / 2);
        }
        d->k.key[j + 1] = b.k->key[0];
    }
    d->k.key[j] = a.k->key[0];
}

static void
idx_remove(struct dma_table *t, uint64_t key)
{
    struct idx_path p;
    struct dma_block *b;
    struct dma_keys *child;
    uint32_t pos;

    if (t->root == NULL) {
        return;
    }
    idx_descend(t, key, &p);
    b = p.leaf;
    pos = p.le;
    if (pos == 0 || b->k.key[pos - 1] != key) {
        return;
    }
    ents_remove(t, ents_of(b, true), pos - 1);
    child = &b->k;
    for (uint32_t l = t->height; l-- > 0;) {
        struct dma_node *d = p.node[l];

        if (child->n < IDX_MIN) {
            idx_rebalance(t, d, p.at[l], l + 1 == t->height);
        } else {
            d->k.key[p.at[l]] = child->key[0];
        }
        child = &d->k;
    }
    if (t->height == 0 && b->k.n == 0) {
        put_node(t, b, true);
        t->root = NULL;
    } else if (t->height > 0 && ((struct dma_node *)t->root)->k.n == 1) {
        /* One child left: it is the root now. */
        struct dma_node *d = t->root;

        t->root = d->child[0];
        t->height--;
        put_node(t, d, false);
    }
}

/* The leftmost leaf under node, h levels above the leaves. */
static const struct dma_block *
leftmost(const void *node, uint32_t h)
{
    for (; h > 0; h--) {
        node = ((const struct dma_node *)node)->child[0];
    }
    return node;
}

/* The map with the greatest iova <= addr, or NULL. */
static struct dma_map *
floor_map(const struct dma_table *t, uint64_t addr)
{
    uint32_t at;
    const struct dma_block *b = idx_leaf(t, addr, &at);

    return b != NULL ? t->maps[b->slot[at]] : NULL;
}

/* The maps with the greatest key <= and the least key > the key p was
 * found for, or NULL. */
static struct dma_map *
path_floor(const struct dma_table *t, const struct idx_path *p)
{
    return p->le > 0 ? t->maps[p->leaf->slot[p->le - 1]] : NULL;
}

static struct dma_map *
path_above(const struct dma_table *t, const struct idx_path *p)
{
    if (p->leaf == NULL) {
        return NULL;
    }
    if (p->le < p->leaf->k.n) {
        return t->maps[p->leaf->slot[p->le]];
    }
    return p->next != NULL ? t->maps[leftmost(p->next, p->next_h)->slot[0]] : NULL;
}

/* Check the subtree under node, h levels above the leaves, whose keys lie
 * in [lo, hi]. Returns its keys, or -1. */
static long
check_node(const struct dma_table *t, const void *node, uint32_t h, bool root,
           uint64_t lo, uint64_t hi)
{
    const struct dma_keys *k = node;
    long total = 0;

    if (k->n > DMA_BLOCK || k->n == 0 || (!root && k->n < IDX_MIN) ||
        (root && h > 0 && k->n < 2)) {
        fprintf(stderr, "dma index: node of %u entries (root %d, level %u)\n",
                k->n, root, h);
        return -1;
    }
    for (uint32_t i = 0; i < DMA_BLOCK; i++) {
        if (i >= k->n ? k->key[i] != UINT64_MAX
                      : k->key[i] < lo || k->key[i] > hi ||
                        (i > 0 && k->key[i] <= k->key[i - 1])) {
            fprintf(stderr, "dma index: bad key %u of %u at level %u\n", i,
                    k->n, h);
            return -1;
        }
    }
    if (h == 0) {
        const struct dma_block *b = node;

        for (uint32_t i = 0; i < b->k.n; i++) {
            const struct dma_map *m = b->slot[i] < t->nr_slots ? t->maps[b->slot[i]]
                                                               : NULL;
            if (m == NULL || m->iova != b->k.key[i] || m->slot != b->slot[i]) {
                fprintf(stderr, "dma index: key %u leads to the wrong slot\n", i);
                return -1;
            }
        }
        return (long)b->k.n;
    }
    for (uint32_t i = 0; i < k->n; i++) {
        const struct dma_node *d = node;
        uint64_t end = i + 1 < k->n ? k->key[i + 1] - 1 : hi;
        long c;

        if (node_min(d->child[i]) != k->key[i]) {
            fprintf(stderr, "dma index: key %u at level %u is not its child's "
                    "least\n", i, h);
            return -1;
        }
        c = check_node(t, d->child[i], h - 1, false, k->key[i], end);
        if (c < 0) {
            return -1;
        }
        total += c;
    }
    return total;
}

int
dma_table_check(const struct dma_table *t)
{
    long n = t->root != NULL ? check_node(t, t->root, t->height, true, 0, UINT64_MAX) : 0;

    if (n < 0) {
        return -1;
    }
    if ((uint64_t)n != t->nr_maps || (t->root == NULL && t->height != 0)) {
        fprintf(stderr, "dma index: %ld keys for %u maps\n", n, t->nr_maps);
        return -1;
    }
    return 0;
}

/* ---- the table ---- */

struct dma_table *
dma_table_new(void)
{
    return calloc(1, sizeof(struct dma_table));
}

/*
 * Memory that random lookups hit: cache-line aligned, and from 2 MiB on a
 * fresh mapping in transparent huge pages where the kernel allows them
 * (madvise mode), so that a lookup costs no page walk (a nested one, in a
 * VM): random SG lookups over 65,535 maps take half the time. Fresh,
 * because heap memory already touched stays in small pages.
 */
#define HOT_HUGE ((size_t)2 << 20)

static size_t
hot_size(size_t size)
{
    return size < HOT_HUGE ? (size + 63) & ~(size_t)63
                           : (size + HOT_HUGE - 1) & ~(HOT_HUGE - 1);
}

static void *
hot_alloc(size_t size)
{
    char *p, *aligned;
    size_t len = hot_size(size);

    if (len < HOT_HUGE) {
        return aligned_alloc(64, len);
    }
    /* Map one huge page more than needed, then trim to the alignment. */
    p = mmap(NULL, len + HOT_HUGE, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return NULL;
    }
    aligned = (char *)(((uintptr_t)p + HOT_HUGE - 1) & ~(uintptr_t)(HOT_HUGE - 1));
    if (aligned > p) {
        munmap(p, (size_t)(aligned - p));
    }
    munmap(aligned + len, HOT_HUGE - (size_t)(aligned - p));
    madvise(aligned, len, MADV_HUGEPAGE);   /* advice: failure is harmless */
    return aligned;
}

static void
hot_free(void *p, size_t size)
{
    size_t len = hot_size(size);

    if (p == NULL) {
        return;
    }
    if (len < HOT_HUGE) {
        free(p);
    } else {
        munmap(p, len);
    }
}

/* Grow the slot arrays to n entries; slots stay cache-line aligned. */
static int
slots_grow(struct dma_table *t, uint32_t n)
{
    struct dma_slot *h;
    struct dma_map **s;
    uint32_t *f;

    s = realloc(t->maps, n * sizeof(*s));
    if (s == NULL) {
        return -1;
    }
    t->maps = s;
    f = realloc(t->free_slots, n * sizeof(*f));
    if (f == NULL) {
        return -1;
    }
    t->free_slots = f;
    h = hot_alloc(n * sizeof(*h));
    if (h == NULL) {
        return -1;
    }
    if (t->nr_slots > 0) {
        memcpy(h, t->slots, t->nr_slots * sizeof(*h));
    }
    hot_free(t->slots, t->nr_slots * sizeof(*h));
    t->slots = h;
    /* Push high slots first so that low numbers are used first. */
    for (uint32_t i = n; i > t->nr_slots; i--) {
        t->maps[i - 1] = NULL;
        t->slots[i - 1] = (struct dma_slot){ .iova = 1 };
        t->free_slots[t->nr_free++] = i - 1;
    }
    t->nr_slots = n;
    return 0;
}

/* Where m starts in this process, or NULL if it is not mapped. */
static char *
map_vaddr(const struct dma_map *m)
{
    const struct dma_file *f = m->file;

    return f != NULL && f->base != NULL ? f->base + (m->file_off - f->base_off)
                                        : NULL;
}

uint64_t
dma_map_past_eof(const struct dma_map *m)
{
    const struct dma_file *f = m->file;
    uint64_t end;

    if (f == NULL) {
        return 0;
    }
    end = m->file_off + (m->last - m->iova) + 1;    /* checked at insertion */
    if (end <= f->file_end) {
        return 0;
    }
    return end - (m->file_off > f->file_end ? m->file_off : f->file_end);
}

void
dma_map_info(const struct dma_map *m, vfu_dma_info_t *info)
{
    const struct dma_file *f = m->file;
    char *start = map_vaddr(m);

    memset(info, 0, sizeof(*info));
    info->iova.iov_base = (void *)(uintptr_t)m->iova;
    info->iova.iov_len = m->last - m->iova + 1;
    info->prot = m->prot;
    info->page_size = f != NULL ? f->page_size : host_page_size();
    info->vaddr = start;
    if (start != NULL) {
        /* The part of the file mapping this map can use, page rounded. */
        uintptr_t pg = f->page_size;
        char *lo = (char *)((uintptr_t)start & ~(pg - 1));
        char *hi = (char *)(((uintptr_t)start + info->iova.iov_len + pg - 1) &
                            ~(pg - 1));
        char *end = f->base + f->size;

        info->mapping.iov_base = lo < f->base ? f->base : lo;
        info->mapping.iov_len = (size_t)((hi > end ? end : hi) -
                                         (char *)info->mapping.iov_base);
    }
}

static int
slot_alloc(struct dma_table *t, struct dma_map *m)
{
    if (t->nr_free == 0) {
        uint32_t n = t->nr_slots == 0 ? 64 : t->nr_slots * 2;

        if (n > INT32_MAX || n < t->nr_slots) {
            errno = ENOSPC;
            return -1;
        }
        if (slots_grow(t, n) < 0) {
            return -1;
        }
    }
    m->slot = t->free_slots[--t->nr_free];
    t->maps[m->slot] = m;
    t->slots[m->slot] = (struct dma_slot){
        .iova = m->iova, .last = m->last, .vaddr = map_vaddr(m), .prot = m->prot,
    };
    return 0;
}

/* ---- the translation cache ---- */

#define TLB_MIN_BITS 10u
#define TLB_MAX_BITS 18u     /* 512 KiB: room for 65,535 maps, 4 entries each */
#define TLB_WIDE_BITS 20u    /* 4 MiB: one entry a map up to 1,048,576 */

/*
 * Size the cache for nr_maps maps: four 16-bit entries a map while slot
 * numbers fit in 16 bits, so that random lookups over all of them mostly
 * hit. Past that, one 32-bit entry a map: 4 bytes a map, where four would
 * cost 16; a lookup that misses still only searches the index. Failing to
 * grow only costs speed.
 */
static void
tlb_fit(struct dma_table *t, uint32_t nr_maps)
{
    bool wide = t->nr_slots > (uint32_t)UINT16_MAX + 1;
    uint32_t bits = TLB_MIN_BITS;
    void *tlb;

    if (wide) {
        while (bits < TLB_WIDE_BITS && (1ull << bits) < nr_maps) {
            bits++;
        }
        bits = bits < TLB_MAX_BITS ? TLB_MAX_BITS : bits;
    } else {
        while (bits < TLB_MAX_BITS && (1ull << bits) < 4ull * nr_maps) {
            bits++;
        }
    }
    if (t->tlb != NULL && t->tlb_wide == wide && 64 - t->tlb_shift >= bits) {
        return;
    }
    tlb = calloc(1ull << bits, wide ? sizeof(uint32_t) : sizeof(uint16_t));
    if (tlb == NULL) {
        return;
    }
    /* Only DMA_MAP resizes, while no device thread looks maps up. */
    free((void *)t->tlb);
    t->tlb = tlb;
    t->tlb_wide = wide;
    t->tlb_shift = 64 - bits;
}

static size_t
tlb_bytes(const struct dma_table *t)
{
    if (t->tlb == NULL) {
        return 0;
    }
    return (t->tlb_wide ? sizeof(uint32_t) : sizeof(uint16_t)) << (64 - t->tlb_shift);
}

struct dma_map *
dma_table_insert(struct dma_table *t, uint64_t iova, uint64_t size, int fd,
                 uint64_t offset, uint32_t prot, bool file_io,
                 uint32_t max_maps)
{
    struct dma_map *m, *n;
    struct idx_path p;
    uint64_t last, base_off = 0;

    if (size == 0 || size - 1 > UINT64_MAX - iova || prot == 0 ||
        (prot & ~(uint32_t)(PROT_READ | PROT_WRITE)) != 0 ||
        (fd >= 0 && (offset > UINT64_MAX - size || size > SIZE_MAX))) {
        errno = EINVAL;
        return NULL;
    }
    last = iova + (size - 1);
    /* One descent: its path is where the map goes, if it may. */
    idx_descend(t, iova, &p);
    n = path_floor(t, &p);
    if ((n != NULL && n->last >= iova) ||
        ((n = path_above(t, &p)) != NULL && n->iova <= last)) {
        errno = EEXIST;
        return NULL;
    }
    if (t->nr_maps >= max_maps) {
        errno = ENOSPC;
        return NULL;
    }
    if (idx_reserve(t) < 0) {
        return NULL;            /* errno ENOMEM, or ENOSPC */
    }
    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return NULL;
    }
    m->iova = iova;
    m->last = last;
    m->prot = prot;
    if (fd >= 0) {
        bool by_msg;
        struct dma_file *f = file_get(t, fd, offset, size, (int)prot, file_io,
                                      &base_off, &by_msg);

        if (f == NULL && !by_msg) {
            int saved = errno;
            free(m);
            errno = saved;
            return NULL;
        }
        /* A file that may shrink under us: reached by message instead. */
        m->by_msg = by_msg;
        m->file = f;
        m->file_off = offset;
    }
    if (slot_alloc(t, m) < 0) {
        int saved = errno;
        if (m->file != NULL) {
            file_put(t, m->file);
        }
        free(m);
        errno = saved;
        return NULL;
    }
    idx_insert(t, &p, iova, m->slot);
    t->nr_maps++;
    tlb_fit(t, t->nr_maps);
    return m;
}

struct dma_map *
dma_table_find(struct dma_table *t, uint64_t iova, uint64_t size)
{
    struct dma_map *m = floor_map(t, iova);

    if (m == NULL || m->iova != iova || size == 0 || m->last - m->iova != size - 1) {
        return NULL;
    }
    return m;
}

void
dma_table_del(struct dma_table *t, struct dma_map *m)
{
    idx_remove(t, m->iova);
    t->maps[m->slot] = NULL;
    t->slots[m->slot] = (struct dma_slot){ .iova = 1 };
    t->free_slots[t->nr_free++] = m->slot;
    t->nr_maps--;
    if (m->file != NULL) {
        file_put(t, m->file);
    }
    free(m);
}

struct dma_map *
dma_table_slot(struct dma_table *t, int slot)
{
    if (t == NULL || slot < 0 || (uint32_t)slot >= t->nr_slots) {
        return NULL;
    }
    return t->maps[slot];
}

struct dma_slot *
dma_table_lookup_index(struct dma_table *t, uint64_t addr)
{
    uint32_t at;
    const struct dma_block *b = idx_leaf(t, addr, &at);
    struct dma_slot *s;
    uint32_t slot;

    if (b == NULL) {
        return NULL;
    }
    slot = b->slot[at];
    s = &t->slots[slot];
    if (addr > s->last) {
        return NULL;
    }
    if (t->tlb != NULL) {
        uint32_t e = dma_tlb_index(t, addr);

        if (t->tlb_wide) {
            atomic_store_explicit(&t->tlb32[e], slot, memory_order_relaxed);
        } else if (slot <= UINT16_MAX) {
            atomic_store_explicit(&t->tlb[e], (uint16_t)slot,
                                  memory_order_relaxed);
        }
    }
    return s;
}

struct dma_map *
dma_table_lookup(struct dma_table *t, uint64_t addr)
{
    struct dma_slot *s = dma_table_lookup_slot(t, addr);

    return s != NULL ? t->maps[s - t->slots] : NULL;
}

struct dma_map *
dma_table_next(struct dma_table *t, uint64_t addr)
{
    struct idx_path p;
    struct dma_map *m;

    idx_descend(t, addr, &p);
    m = path_floor(t, &p);
    if (m != NULL && m->last >= addr) {
        return m;
    }
    return path_above(t, &p);
}

bool
dma_table_overlaps(struct dma_table *t, uint64_t iova, uint64_t last)
{
    struct dma_map *n = floor_map(t, last);

    return n != NULL && n->last >= iova;
}

struct dma_map *
dma_table_any(struct dma_table *t)
{
    if (t == NULL || t->root == NULL) {
        return NULL;
    }
    return t->maps[leftmost(t->root, t->height)->slot[0]];
}

size_t
dma_table_mem(const struct dma_table *t)
{
    if (t == NULL) {
        return 0;
    }
    return sizeof(*t) +
           (size_t)t->nr_maps * sizeof(struct dma_map) +
           (size_t)t->nr_slots * (sizeof(t->maps[0]) + sizeof(t->slots[0]) +
                                  sizeof(t->free_slots[0])) +
           (size_t)(t->nr_leaves + (t->spare_leaf != NULL)) *
               NODE_BYTES(struct dma_block) +
           (size_t)(t->nr_nodes + t->nr_spare_nodes) * NODE_BYTES(struct dma_node) +
           (size_t)t->nr_files * sizeof(struct dma_file) +
           tlb_bytes(t);
}

void
dma_table_destroy(struct dma_table *t)
{
    if (t == NULL) {
        return;
    }
    struct dma_map *m;

    while ((m = dma_table_any(t)) != NULL) {
        dma_table_del(t, m);
    }
    free(t->maps);
    hot_free(t->slots, t->nr_slots * sizeof(t->slots[0]));
    free(t->free_slots);
    free(t->spare_leaf);
    for (uint32_t i = 0; i < t->nr_spare_nodes; i++) {
        free(t->spare_node[i]);
    }
    free((void *)t->tlb);
    free(t);
}
