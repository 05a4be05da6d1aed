/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * The DMA map table: each map in a numbered slot that scatter/gather
 * entries refer to, the slots sorted by IOVA in a two-level index (lookups
 * O(log n); a change moves at most one block of entries and, on a split or
 * merge, the array of block starts: n/32 words at worst, 250 KiB at a
 * million maps, a few microseconds) and a translation cache for lookups.
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
 * a shared mapping past the end of its file raises SIGBUS when touched, and
 * no cheap way to catch it exists for a library (a process-wide handler,
 * and device code reading vaddrs directly could not be covered anyway). So:
 *
 *  - a file sealed with F_SEAL_SHRINK is safe, and mapped;
 *  - a memfd without that seal is not mapped: the map is reached by
 *    DMA_READ/WRITE messages, where a shrunk file is the client's problem
 *    (QEMU's memory-backend-memfd seals by default, seal=on);
 *  - any other file is mapped as libvfio-user maps it: a file on a disk
 *    filesystem, or a tmpfs or hugetlbfs file opened by name, cannot be
 *    sealed at all, and clients (libvfio-user's own tests, QEMU's
 *    memory-backend-file) rely on those maps having a vaddr. A client that
 *    shrinks one can still kill the server with SIGBUS (README, Limits).
 *
 * memfds are told by their name in /proc (memfd_create() names them
 * "memfd:NAME"), as they may have been created without MFD_ALLOW_SEALING
 * and then look like any tmpfs file to F_GET_SEALS. Without /proc mounted
 * a memfd is taken as any other file.
 */
static bool
file_may_shrink(int fd)
{
    char path[32], name[8];
    int seals = fcntl(fd, F_GET_SEALS);
    ssize_t n;

    if (seals >= 0 && (seals & F_SEAL_SHRINK)) {
        return false;
    }
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    n = readlink(path, name, sizeof(name));
    return n >= 7 && memcmp(name, "/memfd:", 7) == 0;
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
    if (!file_io && file_may_shrink(fd)) {
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
            *base_off = start;
            return f;
        }
        f = file_map(fd, start, end - start, prot, false, &st);
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

/* The last block whose first key is <= key, or -1. Branch-free halving:
 * the path does not depend on the data, so nothing is mispredicted. */
static int
idx_block(const struct dma_table *t, uint64_t key)
{
    const uint64_t *base = t->top;
    uint32_t n = t->nr_blocks;

    if (n == 0 || key < base[0]) {
        return -1;
    }
    while (n > 1) {
        uint32_t half = n / 2;
        base = base[half] <= key ? base + half : base;
        n -= half;
    }
    return (int)(base - t->top);
}

/*
 * Entries of b with key <= k. Unused keys are UINT64_MAX, so a fixed
 * branch-free halving over all DMA_BLOCK keys works; it touches log2 of the
 * block's cache lines. k == UINT64_MAX counts the padding too: clamp.
 */
static uint32_t
block_count_le(const struct dma_block *b, uint64_t k)
{
    const uint64_t *base = b->key;
    uint32_t n = DMA_BLOCK, c;

    while (n > 1) {
        uint32_t half = n / 2;
        base = base[half] <= k ? base + half : base;
        n -= half;
    }
    c = (uint32_t)(base - b->key) + (*base <= k);
    return c < b->n ? c : b->n;
}

/* Keep the padding of b's unused keys. */
static void
block_pad(struct dma_block *b)
{
    for (uint32_t i = b->n; i < DMA_BLOCK; i++) {
        b->key[i] = UINT64_MAX;
    }
}

/* Make sure the next idx_insert() needs no memory. */
static int
idx_reserve(struct dma_table *t)
{
    if (t->nr_blocks + 1 > t->cap_blocks) {
        uint32_t cap = t->cap_blocks == 0 ? 16 : t->cap_blocks * 2;
        uint64_t *top = realloc(t->top, cap * sizeof(*top));
        struct dma_block **b;

        if (top == NULL) {
            return -1;
        }
        t->top = top;
        b = realloc(t->blocks, cap * sizeof(*b));
        if (b == NULL) {
            return -1;
        }
        t->blocks = b;
        t->cap_blocks = cap;
    }
    if (t->spare == NULL) {
        t->spare = malloc(sizeof(*t->spare));
        if (t->spare == NULL) {
            return -1;
        }
    }
    return 0;
}

static void
idx_open(struct dma_table *t, uint32_t at, struct dma_block *b)
{
    memmove(&t->top[at + 1], &t->top[at], (t->nr_blocks - at) * sizeof(t->top[0]));
    memmove(&t->blocks[at + 1], &t->blocks[at],
            (t->nr_blocks - at) * sizeof(t->blocks[0]));
    t->blocks[at] = b;
    t->top[at] = b->key[0];
    t->nr_blocks++;
}

static void
idx_close(struct dma_table *t, uint32_t at)
{
    free(t->blocks[at]);
    t->nr_blocks--;
    memmove(&t->top[at], &t->top[at + 1], (t->nr_blocks - at) * sizeof(t->top[0]));
    memmove(&t->blocks[at], &t->blocks[at + 1],
            (t->nr_blocks - at) * sizeof(t->blocks[0]));
}

/* Add key (not present); idx_reserve() succeeded before. */
static void
idx_insert(struct dma_table *t, uint64_t key, uint32_t slot)
{
    struct dma_block *b;
    uint32_t pos;
    int i;

    if (t->nr_blocks == 0) {
        b = t->spare;
        t->spare = NULL;
        b->n = 1;
        b->key[0] = key;
        b->slot[0] = slot;
        block_pad(b);
        idx_open(t, 0, b);
        return;
    }
    i = idx_block(t, key);
    if (i < 0) {
        i = 0;                  /* below everything: the first block */
    }
    b = t->blocks[i];
    if (b->n == DMA_BLOCK) {
        /* Split: the upper half moves to a new block after this one. */
        struct dma_block *nb = t->spare;
        const uint32_t h = DMA_BLOCK / 2;

        t->spare = NULL;
        nb->n = DMA_BLOCK - h;
        memcpy(nb->key, &b->key[h], nb->n * sizeof(b->key[0]));
        memcpy(nb->slot, &b->slot[h], nb->n * sizeof(b->slot[0]));
        b->n = h;
        block_pad(b);
        block_pad(nb);
        idx_open(t, (uint32_t)i + 1, nb);
        if (key >= nb->key[0]) {
            b = nb;
            i++;
        }
    }
    pos = block_count_le(b, key);
    memmove(&b->key[pos + 1], &b->key[pos], (b->n - pos) * sizeof(b->key[0]));
    memmove(&b->slot[pos + 1], &b->slot[pos], (b->n - pos) * sizeof(b->slot[0]));
    b->key[pos] = key;
    b->slot[pos] = slot;
    b->n++;
    t->top[i] = b->key[0];
}

/* Append block at+1 to block at when both fit in half a block, so that
 * unmapping leaves no trail of nearly empty blocks. */
static void
idx_merge(struct dma_table *t, uint32_t at)
{
    struct dma_block *a, *b;

    if (at + 1 >= t->nr_blocks) {
        return;
    }
    a = t->blocks[at];
    b = t->blocks[at + 1];
    if (a->n + b->n > DMA_BLOCK / 2) {
        return;
    }
    memcpy(&a->key[a->n], b->key, b->n * sizeof(b->key[0]));
    memcpy(&a->slot[a->n], b->slot, b->n * sizeof(b->slot[0]));
    a->n += b->n;
    block_pad(a);
    idx_close(t, at + 1);
}

static void
idx_remove(struct dma_table *t, uint64_t key)
{
    int i = idx_block(t, key);
    struct dma_block *b;
    uint32_t pos;

    if (i < 0) {
        return;
    }
    b = t->blocks[i];
    pos = block_count_le(b, key);
    if (pos == 0 || b->key[pos - 1] != key) {
        return;
    }
    pos--;
    b->n--;
    memmove(&b->key[pos], &b->key[pos + 1], (b->n - pos) * sizeof(b->key[0]));
    memmove(&b->slot[pos], &b->slot[pos + 1], (b->n - pos) * sizeof(b->slot[0]));
    b->key[b->n] = UINT64_MAX;
    if (b->n == 0) {
        idx_close(t, (uint32_t)i);
        return;
    }
    t->top[i] = b->key[0];
    if (b->n < DMA_BLOCK / 4) {
        idx_merge(t, (uint32_t)i);
        if (i > 0) {
            idx_merge(t, (uint32_t)i - 1);
        }
    }
}

/* The map with the greatest iova <= addr, or NULL. */
static struct dma_map *
floor_map(const struct dma_table *t, uint64_t addr)
{
    int i = idx_block(t, addr);
    const struct dma_block *b;

    if (i < 0) {
        return NULL;
    }
    b = t->blocks[i];
    return t->maps[b->slot[block_count_le(b, addr) - 1]];
}

/* The map with the smallest iova > addr, or NULL. */
static struct dma_map *
above_map(const struct dma_table *t, uint64_t addr)
{
    int i = idx_block(t, addr);
    const struct dma_block *b;
    uint32_t c;

    if (t->nr_blocks == 0) {
        return NULL;
    }
    if (i < 0) {
        return t->maps[t->blocks[0]->slot[0]];
    }
    b = t->blocks[i];
    c = block_count_le(b, addr);
    if (c < b->n) {
        return t->maps[b->slot[c]];
    }
    if ((uint32_t)i + 1 < t->nr_blocks) {
        return t->maps[t->blocks[i + 1]->slot[0]];
    }
    return NULL;
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
    uint64_t last, base_off = 0;

    if (size == 0 || size - 1 > UINT64_MAX - iova || prot == 0 ||
        (prot & ~(uint32_t)(PROT_READ | PROT_WRITE)) != 0 ||
        (fd >= 0 && (offset > UINT64_MAX - size || size > SIZE_MAX))) {
        errno = EINVAL;
        return NULL;
    }
    last = iova + (size - 1);
    n = floor_map(t, iova);
    if ((n != NULL && n->last >= iova) ||
        ((n = above_map(t, iova)) != NULL && n->iova <= last)) {
        errno = EEXIST;
        return NULL;
    }
    if (t->nr_maps >= max_maps) {
        errno = ENOSPC;
        return NULL;
    }
    if (idx_reserve(t) < 0) {
        errno = ENOMEM;
        return NULL;
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
    idx_insert(t, iova, m->slot);
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
    const struct dma_block *b;
    struct dma_slot *s;
    uint32_t slot;
    int i = idx_block(t, addr);

    if (i < 0) {
        return NULL;
    }
    b = t->blocks[i];
    slot = b->slot[block_count_le(b, addr) - 1];
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
    struct dma_map *m = floor_map(t, addr);

    if (m != NULL && m->last >= addr) {
        return m;
    }
    return above_map(t, addr);
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
    if (t == NULL || t->nr_blocks == 0) {
        return NULL;
    }
    return t->maps[t->blocks[0]->slot[0]];
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
           (size_t)t->cap_blocks * (sizeof(t->top[0]) + sizeof(t->blocks[0])) +
           (size_t)(t->nr_blocks + (t->spare != NULL)) * sizeof(struct dma_block) +
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
    free(t->top);
    free(t->blocks);
    free(t->spare);
    free((void *)t->tlb);
    free(t);
}
