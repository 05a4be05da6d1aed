/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * The SIGBUS guard of DMA mappings whose file the client could shrink.
 *
 * A page of a shared file mapping that lies past the end of its file
 * raises SIGBUS when touched. memfds can be sealed against shrinking (and
 * unsealed ones are not mapped, see dma_table.c), but a file on disk, or a
 * tmpfs or hugetlbfs file opened by name (QEMU's memory-backend-file),
 * cannot be sealed at all, and a client that truncates one would kill the
 * server the next time the device (or the core, for a message) touched a
 * page of it.
 *
 * So each mapping of such a file is registered here, and a SIGBUS handler
 * that knows them puts private zeroed memory in place of the page that
 * faulted: the access is retried and succeeds, reading zeros, and writes
 * to that page go nowhere the client sees (it gave the memory up). The
 * table and the handler only read and write plain words, and the handler
 * calls nothing but mmap(), sigaction() and raise() (system calls), so it
 * may run at any point of any thread. A SIGBUS outside every registered
 * mapping goes to whatever handler the process had before, or kills it as
 * it would have without us.
 *
 * The handler is installed when the first such mapping is made, and put
 * back in front with each new one if the program has set a SIGBUS handler
 * of its own since: the program's handler is chained to (and one that
 * chains back to us, having taken us for its predecessor, is caught at it
 * and the fault gets the default action).
 */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "dma_internal.h"

/*
 * Guarded mappings at most, for all contexts of the process. Past that a
 * map of an unsealable file is reached by messages (dma_table.c), which
 * is slower but as safe, so a client making mappings by the thousand can
 * not go past the guard.
 */
#define GUARD_SLOTS 16384

struct guard_slot {
    uintptr_t start;            /* 0: free; published last, cleared first */
    uintptr_t end;
    uintptr_t page;             /* the mapping's page size */
    int prot;
    const void *owner;          /* whose log hears of the hits */
    unsigned long hits;         /* pages replaced, not yet reported */
};

static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER;
static struct guard_slot *guard_slots;          /* GUARD_SLOTS of them */
static uint32_t *guard_free;                    /* stack of free indexes */
static uint32_t guard_nr_free;
static struct sigaction guard_prev;             /* the handler before us */
static const siginfo_t *guard_passing;          /* being passed on */
static unsigned long guard_total_hits;          /* ever, for a cheap check */

static void
guard_load_slot(const struct guard_slot *s, uintptr_t *start, uintptr_t *end)
{
    *start = __atomic_load_n(&s->start, __ATOMIC_ACQUIRE);
    *end = __atomic_load_n(&s->end, __ATOMIC_RELAXED);
}

/* Hand a fault that is not ours to whoever had SIGBUS before. */
static void
guard_pass_on(int sig, siginfo_t *si, void *uc)
{
    bool back = __atomic_load_n(&guard_passing, __ATOMIC_ACQUIRE) == si;

    if (!back && (guard_prev.sa_flags & SA_SIGINFO)) {
        __atomic_store_n(&guard_passing, si, __ATOMIC_RELEASE);
        guard_prev.sa_sigaction(sig, si, uc);
        __atomic_store_n(&guard_passing, NULL, __ATOMIC_RELEASE);
    } else if (!back && guard_prev.sa_handler != SIG_DFL &&
               guard_prev.sa_handler != SIG_IGN) {
        guard_prev.sa_handler(sig);
    } else {
        /*
         * The default action (a core dump): back to it, and let the fault
         * happen again on return, or raise again a signal that was sent
         * (it stays pending until this handler returns).
         */
        struct sigaction dfl = { .sa_handler = SIG_DFL };

        sigaction(SIGBUS, &dfl, NULL);
        if (si->si_code <= 0) {
            raise(sig);
        }
    }
}

static void
guard_on_sigbus(int sig, siginfo_t *si, void *uc)
{
    uintptr_t addr = (uintptr_t)si->si_addr;
    int saved = errno;
    uint32_t i;

    if (si->si_code == BUS_ADRERR && guard_slots != NULL) {
        for (i = 0; i < GUARD_SLOTS; i++) {
            struct guard_slot *s = &guard_slots[i];
            uintptr_t start, end, page;

            guard_load_slot(s, &start, &end);
            if (start == 0 || addr < start || addr >= end) {
                continue;
            }
            page = addr & ~(s->page - 1);
            if (mmap((void *)page, s->page, s->prot,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
                MAP_FAILED) {
                break;          /* can't help: fail as we would have */
            }
            __atomic_fetch_add(&s->hits, 1, __ATOMIC_RELAXED);
            __atomic_fetch_add(&guard_total_hits, 1, __ATOMIC_RELEASE);
            errno = saved;
            return;
        }
    }
    guard_pass_on(sig, si, uc);
    errno = saved;
}

/* Our handler in front, the current one (if not ours) chained to.
 * guard_lock held. */
static int
guard_install(void)
{
    struct sigaction sa = { 0 }, cur;

    if (sigaction(SIGBUS, NULL, &cur) < 0) {
        return -1;
    }
    if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == guard_on_sigbus) {
        return 0;
    }
    sa.sa_sigaction = guard_on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    guard_prev = cur;
    return sigaction(SIGBUS, &sa, NULL);
}

/* guard_lock held. */
static int
guard_setup(void)
{
    uint32_t i;

    guard_slots = calloc(GUARD_SLOTS, sizeof(*guard_slots));
    guard_free = malloc(GUARD_SLOTS * sizeof(*guard_free));
    if (guard_slots == NULL || guard_free == NULL) {
        free(guard_slots);
        free(guard_free);
        guard_slots = NULL;
        guard_free = NULL;
        errno = ENOMEM;
        return -1;
    }
    for (i = 0; i < GUARD_SLOTS; i++) {
        guard_free[i] = GUARD_SLOTS - 1 - i;
    }
    guard_nr_free = GUARD_SLOTS;
    return 0;
}

int
dma_guard_add(const void *owner, void *base, size_t size, size_t page_size,
              int prot)
{
    struct guard_slot *s;
    uint32_t i;

    pthread_mutex_lock(&guard_lock);
    if ((guard_slots == NULL && guard_setup() < 0) || guard_install() < 0) {
        pthread_mutex_unlock(&guard_lock);
        return -1;
    }
    if (guard_nr_free == 0) {
        pthread_mutex_unlock(&guard_lock);
        errno = ENOSPC;
        return -1;
    }
    i = guard_free[--guard_nr_free];
    s = &guard_slots[i];
    s->page = page_size;
    s->prot = prot;
    s->owner = owner;
    __atomic_store_n(&s->hits, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->end, (uintptr_t)base + size, __ATOMIC_RELAXED);
    __atomic_store_n(&s->start, (uintptr_t)base, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&guard_lock);
    return (int)i + 1;
}

void
dma_guard_remove(int id)
{
    struct guard_slot *s;

    if (id <= 0 || id > GUARD_SLOTS) {
        return;
    }
    pthread_mutex_lock(&guard_lock);
    s = &guard_slots[id - 1];
    /* Before the caller unmaps: a fault there is no longer ours. */
    __atomic_store_n(&s->start, 0, __ATOMIC_RELEASE);
    guard_free[guard_nr_free++] = (uint32_t)id - 1;
    pthread_mutex_unlock(&guard_lock);
}

unsigned long
dma_guard_hits(const void *owner, unsigned long *seen)
{
    unsigned long total = __atomic_load_n(&guard_total_hits, __ATOMIC_ACQUIRE);
    unsigned long hits = 0;
    uint32_t i;

    if (total == *seen) {
        return 0;               /* the usual case: one load */
    }
    pthread_mutex_lock(&guard_lock);
    *seen = total;
    for (i = 0; guard_slots != NULL && i < GUARD_SLOTS; i++) {
        struct guard_slot *s = &guard_slots[i];

        if (s->owner == owner && s->start != 0) {
            hits += __atomic_exchange_n(&s->hits, 0, __ATOMIC_RELAXED);
        }
    }
    pthread_mutex_unlock(&guard_lock);
    return hits;
}
