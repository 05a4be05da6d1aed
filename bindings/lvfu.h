/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * What the files of the `vfu` Lua module share. One concern per file:
 *   lvfu_rt.c      per-lua_State runtime: protected calls, budget, allocator
 *   lvfu_module.c  luaopen_vfu, logging, the embedded Lua helpers
 *   lvfu_spec.c    turning a device declaration table into C
 *   lvfu_device.c  the device object and the callbacks into Lua
 *   lvfu_caps.c    config space capabilities from tables
 *   lvfu_dma.c     dma_read/dma_write and held SG handles
 *   lvfu_migr.c    migration callbacks and automatic state
 *   lvfu_loop.c    the event loop: attach, serve, reconnect, timers
 *   lvfu_trace.c   one JSON line per protocol message and device event
 *   lvfu_client.c  vfu.connect: the client side, for tests
 *   lvfu_buf.c     vfu.buffer: C-side storage, copied to and from DMA
 *   lvfu_pack.c    fixed little-endian records in memory (pack/unpack)
 */
#ifndef LVFU_H
#define LVFU_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <lua.h>
#include <lauxlib.h>

#include "libvfio-user.h"

#define LVFU_DEVICE_MT  "vfu.device"
#define LVFU_TIMER_MT   "vfu.timer"
#define LVFU_SG_MT      "vfu.sg"
#define LVFU_CLIENT_MT  "vfu.client"

#define LVFU_MAX_CAPS   16
#define LVFU_CAP_MAX    256
#define LVFU_MAX_SG     16
#define LVFU_DMA_MAX    (16u << 20)     /* largest dma_read/dma_write */

struct lvfu_timer;
struct lvfu_sg;

/* Per-lua_State runtime, kept in the registry (see lvfu_rt()). */
struct lvfu_rt {
    /* budget for one handler call */
    unsigned budget_ms;
    bool in_handler;
    bool budget_hit;
    unsigned call_budget_ms;    /* of the outermost call running */
    bool deadline_set;          /* the hook has started its clock */
    struct timespec deadline;

    int verbose;                /* 0 errors, 1 info, 2 debug */
    FILE *trace;                /* one JSON line per event, or NULL */

    struct lvfu_timer *timers;  /* armed timers, polled by the loop */
    int loops;                  /* lvfu_loop_run()s on the C stack */
};

struct lvfu_region {
    bool present;
    size_t size;
    int flags;                  /* VFU_REGION_FLAG_* */
    bool mem64, prefetch;
    bool backed;                /* memfd-backed, mmap-able by the client */
    struct iovec *areas;        /* sparse mmap areas, NULL: whole region */
    uint32_t nr_areas;
    int read_ref, write_ref;
    int fd;
    char *map;                  /* our mapping of fd */
};

struct lvfu_cap {
    uint8_t data[LVFU_CAP_MAX];
    size_t len;
    int flags;                  /* VFU_CAP_FLAG_* */
    size_t pos;                 /* 0: the library picks */
    const char *kind;
};

struct lvfu_dev {
    bool closed;
    lua_State *L;               /* thread that runs the loop; callbacks use it */
    struct lvfu_rt *rt;         /* lvfu_rt() of L, looked up once */
    vfu_ctx_t *ctx;
    char *sock_path;
    int self_ref;               /* keeps the device alive while served */

    /* identity */
    vfu_pci_type_t pci_type;
    uint16_t vid, did, ssvid, ssid;
    uint8_t class_base, class_sub, class_pi;
    uint8_t revision;
    char name[64];

    struct lvfu_region regions[VFU_PCI_DEV_NUM_REGIONS];
    struct lvfu_cap caps[LVFU_MAX_CAPS];
    int nr_caps;

    uint32_t nirqs[VFU_DEV_NUM_IRQS];
    int irq_state_ref[VFU_DEV_NUM_IRQS];

    int reset_ref, quiesce_ref;
    bool dma;
    int dma_map_ref, dma_unmap_ref;
    struct lvfu_sg *sgs;        /* held SG handles, released on unmap */

    bool migr;
    int migr_transition_ref, migr_save_ref, migr_load_ref, migr_state_ref;
    int migr_precopy_ref;
    int migr_receive_ref;       /* pre-copy records as they arrive, or NOREF */
    vfu_migr_state_t migr_state;
    char *mig_out;              /* records being read by the client */
    size_t mig_out_len, mig_out_pos;
    char *mig_in;               /* state being received from the client */
    size_t mig_in_len, mig_in_cap;
    bool mig_in_over;           /* more than the bound was sent: refused */
    bool mig_abandoned;         /* the client left while resuming */
    bool mig_in_failed;         /* receive() failed or a record was bad */

    bool running;               /* inside lvfu_loop_run(): not to be freed */
    bool stop;                  /* dev:stop() */
    bool attached;
};

/* lvfu_rt.c */
struct lvfu_rt *lvfu_rt(lua_State *L);
/* A state whose allocator refuses to grow past mem_cap bytes (0: no cap);
 * close it with lvfu_closestate(). */
lua_State *lvfu_newstate(size_t mem_cap);
void lvfu_closestate(lua_State *L);
size_t lvfu_mem_used(lua_State *L);
size_t lvfu_mem_cap(lua_State *L);     /* 0: no cap */
void lvfu_open_sandbox(lua_State *L, bool unsafe);
void lvfu_budget_hook_install(lua_State *L);
/*
 * One entry from the C side into a script handler (the registry reference
 * ref). Everything that allocates happens inside the protected call: push
 * builds the arguments from arg (returns how many), take reads the nres
 * results (returns -1 to refuse them; the caller logs why). An allocation
 * failure is thus a failed handler, never a Lua panic.
 */
struct lvfu_entry {
    const char *who;            /* "bar0", or NULL */
    const char *what;           /* "read", "reset", ... for the log */
    int ref;                    /* LUA_NOREF: push pushes the function
                                 * first (then no stack arguments) */
    int nres;
    int (*push)(lua_State *L, void *arg);
    int (*take)(lua_State *L, void *arg);
    void *arg;
    bool rejected;              /* take returned -1 */
};
/* Call e with nstack arguments already on the stack (pushed without
 * allocating) before those push adds. Returns 0, or -1 with errno EIO: the
 * handler failed (logged here) or take refused its results (not logged).
 * The stack is left as it was without the nstack arguments. */
int lvfu_enter(lua_State *L, struct lvfu_dev *dev, struct lvfu_entry *e,
               int nstack);
/* Top-level code (the script's chunk): call the function below nargs
 * arguments under pcall with a traceback handler and budget_ms (0: none);
 * 0 with nres results, or -1 with the traceback on the stack. */
int lvfu_pcall_budget(lua_State *L, int nargs, int nres, unsigned budget_ms);
int lvfu_traceback(lua_State *L);
const char *lvfu_errmsg(lua_State *L, int status);
void lvfu_errorf(struct lvfu_dev *dev, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int lvfu_fail(lua_State *L, int err, const char *what);
void lvfu_hide_metatable(lua_State *L, int idx);
int lvfu_optflag(lua_State *L, int idx, const char *field, bool def);

/* lvfu_module.c */
int luaopen_vfu(lua_State *L);
void lvfu_log_sink(vfu_ctx_t *ctx, int level, const char *msg);
int lvfu_load_helper(lua_State *L, const char *name);

/* lvfu_spec.c */
void lvfu_spec_parse(lua_State *L, int spec, struct lvfu_dev *dev);
const char *lvfu_region_name(int idx);
void lvfu_summary(struct lvfu_dev *dev, FILE *out);

/* lvfu_caps.c */
void lvfu_caps_parse(lua_State *L, int list, struct lvfu_dev *dev);

/* lvfu_device.c */
void lvfu_device_register(lua_State *L);
int lvfu_device_new(lua_State *L);
struct lvfu_dev *lvfu_checkdev(lua_State *L, int idx);
int lvfu_dev_listen(lua_State *L, struct lvfu_dev *dev, const char *path);
void lvfu_dev_release(lua_State *L, struct lvfu_dev *dev);
void lvfu_unref(lua_State *L, int *ref);

/* lvfu_dma.c */
void lvfu_dma_register(lua_State *L);
int lvfu_dma_setup(struct lvfu_dev *dev);
void lvfu_dma_release_all(lua_State *L, struct lvfu_dev *dev);
int lvfu_dev_dma_read(lua_State *L);
int lvfu_dev_dma_write(lua_State *L);
int lvfu_dev_dma_hold(lua_State *L);

/* lvfu_migr.c */
int lvfu_migr_setup(struct lvfu_dev *dev);
void lvfu_migr_free(struct lvfu_dev *dev);
void lvfu_migr_lost(struct lvfu_dev *dev);
const char *lvfu_migr_state_name(vfu_migr_state_t s);

/* lvfu_loop.c */
void lvfu_timer_register(lua_State *L);
int lvfu_timer_new(lua_State *L);
/* Serve dev until it is stopped, rt->stop is raised or stop_fd becomes
 * readable (-1: none). Returns 0, or -1 with errno. */
int lvfu_loop_run(lua_State *L, struct lvfu_dev *dev, int stop_fd);

/* lvfu_trace.c: NULL when tracing is off; otherwise an object with the
 * time and event set, written out and freed by lvfu_trace_end(). */
struct json_object *lvfu_trace_begin(lua_State *L, const char *event);
void lvfu_trace_end(lua_State *L, struct json_object *obj);
/* The core's message trace (vfu_setup_trace), arg being the FILE. */
struct vfio_user_header;
void lvfu_trace_msg(vfu_ctx_t *ctx, const struct vfio_user_header *hdr,
                    const void *payload, size_t size, bool is_reply, void *arg);

/* lvfu_client.c */
void lvfu_client_register(lua_State *L);
int lvfu_client_connect(lua_State *L);

/* lvfu_buf.c */
int lvfu_buffer_new(lua_State *L);
void lvfu_buffer_register(lua_State *L);

/* lvfu_pack.c: a string.pack subset on memory; formats raise when bad. */
#define LVFU_PACK_MAX 256       /* bytes one format may cover */
size_t lvfu_pack_size(lua_State *L, const char *fmt, int *nvalues);
int lvfu_unpack_mem(lua_State *L, const unsigned char *p, const char *fmt);
/* values from stack index arg on */
void lvfu_pack_mem(lua_State *L, unsigned char *p, const char *fmt, int arg);

#endif /* LVFU_H */
