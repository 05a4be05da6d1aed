/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 the vfu authors. */

/*
 * VFIO_USER_VERSION: the JSON capabilities object, parsed and written for
 * both ends. The payload is {"capabilities": {...}}; unknown keys are
 * ignored so that newer peers can talk to us, wrong types are EINVAL.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <json.h>

#include "private.h"
#include "tran_sock.h"

/* Largest JSON document we accept; QEMU's hello is ~200 bytes. */
#define VFU_VERSION_JSON_MAX 4096

/* The most fds per message a client may claim to accept, as in
 * libvfio-user (we send at most VFU_MAX_RX_FDS whatever it says). */
#define VFU_CLIENT_MAX_FDS_LIMIT 1024

static int
get_u64(json_object *o, uint64_t *out)
{
    if (!json_object_is_type(o, json_type_int)) {
        return -1;
    }
    int64_t v = json_object_get_int64(o);
    if (v < 0) {
        return -1;    /* a negative bound means nothing */
    }
    /* json-c saturates values above INT64_MAX; they are stored unsigned */
    *out = v == INT64_MAX ? json_object_get_uint64(o) : (uint64_t)v;
    return 0;
}

static int
parse_migration(json_object *m, struct vfu_client_caps *caps)
{
    json_object *v;

    if (!json_object_is_type(m, json_type_object)) {
        return -1;
    }
    if (json_object_object_get_ex(m, "pgsize", &v) &&
        get_u64(v, &caps->migr_pgsize) < 0) {
        return -1;
    }
    if (json_object_object_get_ex(m, "max_bitmap_size", &v) &&
        get_u64(v, &caps->migr_max_bitmap_size) < 0) {
        return -1;
    }
    caps->has_migration = true;
    return 0;
}

/*
 * {"supported": bool, "fd_index": n}: a client proposes it without the
 * index; a server that agrees says which of its reply's fds is the client's
 * end of the second socket.
 */
static int
parse_twin(json_object *t, struct vfu_client_caps *caps)
{
    json_object *v;
    uint64_t u;

    if (!json_object_is_type(t, json_type_object)) {
        return -1;
    }
    if (json_object_object_get_ex(t, "supported", &v)) {
        if (!json_object_is_type(v, json_type_boolean)) {
            return -1;
        }
        caps->twin_socket = json_object_get_boolean(v);
    }
    if (json_object_object_get_ex(t, "fd_index", &v)) {
        if (get_u64(v, &u) < 0 || u > INT32_MAX) {
            return -1;
        }
        caps->twin_fd_index = (int32_t)u;
    }
    return 0;
}

static int
parse_caps(json_object *c, struct vfu_client_caps *caps)
{
    json_object *v;
    uint64_t u;

    if (!json_object_is_type(c, json_type_object)) {
        return -1;
    }
    if (json_object_object_get_ex(c, "max_msg_fds", &v)) {
        if (get_u64(v, &u) < 0 || u > UINT32_MAX) {
            return -1;
        }
        caps->max_msg_fds = (uint32_t)u;
    }
    if (json_object_object_get_ex(c, "max_data_xfer_size", &v) &&
        get_u64(v, &caps->max_data_xfer_size) < 0) {
        return -1;
    }
    if (json_object_object_get_ex(c, "max_dma_maps", &v) &&
        get_u64(v, &caps->max_dma_maps) < 0) {
        return -1;
    }
    if (json_object_object_get_ex(c, "pgsizes", &v) &&
        get_u64(v, &caps->pgsizes) < 0) {
        return -1;
    }
    if (json_object_object_get_ex(c, "migration", &v) &&
        parse_migration(v, caps) < 0) {
        return -1;
    }
    if (json_object_object_get_ex(c, "write_multiple", &v)) {
        if (!json_object_is_type(v, json_type_boolean)) {
            return -1;
        }
        caps->write_multiple = json_object_get_boolean(v);
    }
    if (json_object_object_get_ex(c, "twin_socket", &v) &&
        parse_twin(v, caps) < 0) {
        return -1;
    }
    return 0;
}

int
vfu_caps_parse(const char *json, size_t len, struct vfu_client_caps *caps)
{
    json_tokener *tok;
    json_object *root, *c;
    int rc = -1;

    /* The document must be NUL terminated inside the payload. */
    if (len == 0 || len > VFU_VERSION_JSON_MAX || json[len - 1] != '\0' ||
        strlen(json) != len - 1) {
        errno = EINVAL;
        return -1;
    }
    tok = json_tokener_new();
    if (tok == NULL) {
        errno = ENOMEM;
        return -1;
    }
    root = json_tokener_parse_ex(tok, json, (int)len - 1);
    if (root != NULL && json_tokener_get_error(tok) == json_tokener_success &&
        (size_t)json_tokener_get_parse_end(tok) == len - 1 &&
        json_object_is_type(root, json_type_object)) {
        if (!json_object_object_get_ex(root, "capabilities", &c)) {
            rc = 0;   /* an empty object: all defaults */
        } else {
            rc = parse_caps(c, caps);
        }
    }
    json_object_put(root);
    json_tokener_free(tok);
    if (rc < 0) {
        errno = EINVAL;
    }
    return rc;
}

ssize_t
vfu_caps_format(const struct vfu_client_caps *caps, char *buf, size_t size)
{
    char migr[128] = "";
    char twin[64] = "";
    int n;

    if (caps->has_migration) {
        snprintf(migr, sizeof(migr),
                 ",\"migration\":{\"pgsize\":%" PRIu64
                 ",\"max_bitmap_size\":%" PRIu64 "}",
                 caps->migr_pgsize, caps->migr_max_bitmap_size);
    }
    if (caps->twin_socket && caps->twin_fd_index >= 0) {
        snprintf(twin, sizeof(twin),
                 ",\"twin_socket\":{\"supported\":true,\"fd_index\":%" PRId32 "}",
                 caps->twin_fd_index);
    } else if (caps->twin_socket) {
        snprintf(twin, sizeof(twin), ",\"twin_socket\":{\"supported\":true}");
    }
    n = snprintf(buf, size,
                 "{\"capabilities\":{\"max_msg_fds\":%" PRIu32
                 ",\"max_data_xfer_size\":%" PRIu64
                 ",\"max_dma_maps\":%" PRIu64
                 ",\"pgsizes\":%" PRIu64 "%s%s%s}}",
                 caps->max_msg_fds, caps->max_data_xfer_size,
                 caps->max_dma_maps, caps->pgsizes, migr,
                 caps->write_multiple ? ",\"write_multiple\":true" : "",
                 twin);
    if (n < 0 || (size_t)n >= size) {
        errno = ENOBUFS;
        return -1;
    }
    return n + 1;
}

void
vfu_caps_defaults(struct vfu_client_caps *c)
{
    memset(c, 0, sizeof(*c));
    c->max_msg_fds = 1;
    c->max_data_xfer_size = VFIO_USER_DEFAULT_MAX_DATA_XFER_SIZE;
    c->max_dma_maps = VFU_DEFAULT_MAX_DMA_MAPS;
    c->pgsizes = VFU_DEFAULT_PGSIZE;
    c->migr_pgsize = VFU_DEFAULT_PGSIZE;
    c->migr_max_bitmap_size = VFU_MIGR_MAX_BITMAP_SIZE;
    c->twin_fd_index = -1;
}

/*
 * Agree to the twin socket if the client proposed it and can take the fd
 * (max_msg_fds > 0, and a reply to carry it). Returns the client's end,
 * passed at fd_index 0 of the reply, or -1 (declined; also when it cannot
 * be set up, which costs the client only the capability).
 */
static int
agree_twin(vfu_ctx_t *ctx, const struct vfu_msg *msg,
           const struct vfu_client_caps *client)
{
    int fd = -1;

    ctx->caps.twin_socket = false;
    ctx->caps.twin_fd_index = -1;
    if (client->twin_socket && client->max_msg_fds > 0 &&
        !(msg->hdr.flags & VFIO_USER_F_NO_REPLY)) {
        fd = vfu_twin_open(ctx);
        if (fd < 0) {
            vfu_log_errno(ctx, LOG_ERR, errno, "twin socket declined");
        } else {
            ctx->caps.twin_socket = true;
            ctx->caps.twin_fd_index = 0;
        }
    }
    return fd;
}

int
vfu_handle_version(vfu_ctx_t *ctx, struct vfu_msg *msg)
{
    static const char *const why[] = { "too short", "major mismatch",
                                       "bad capabilities" };
    struct vfio_user_version *in = msg->in;
    struct vfu_client_caps client;
    int bad = -1;

    vfu_caps_defaults(&client);
    if (msg->in_size < sizeof(*in)) {
        bad = 0;
    } else if (in->major != 0) {
        bad = 1;
    } else if (msg->in_size > sizeof(*in) &&
               vfu_caps_parse((const char *)in->data,
                              msg->in_size - sizeof(*in), &client) < 0) {
        bad = 2;
    } else if (client.pgsizes == 0 || (client.pgsizes & (VFU_DEFAULT_PGSIZE - 1)) != 0 ||
               !(client.pgsizes & VFU_DEFAULT_PGSIZE) ||
               client.max_data_xfer_size == 0 ||
               client.max_msg_fds > VFU_CLIENT_MAX_FDS_LIMIT) {
        bad = 2;
    } else if (client.has_migration && vfu_migration_enabled(ctx) &&
               client.migr_pgsize != VFU_DEFAULT_PGSIZE) {
        /* Dirty pages are tracked in the host's pages, the one size we
         * announce; a device without migration has no use for the value. */
        bad = 2;
    }
    if (bad >= 0) {
        vfu_log(ctx, LOG_ERR, "VERSION rejected: %s", why[bad]);
        errno = EINVAL;
        return -1;
    }

    /* What we agree to: the smaller of each bound, our features only. */
    struct vfu_client_caps *c = &ctx->caps;
    vfu_caps_defaults(c);
    c->major = LIB_VFIO_USER_MAJOR;
    c->minor = LIB_VFIO_USER_MINOR;
    c->max_msg_fds = client.max_msg_fds < VFU_MAX_RX_FDS ? client.max_msg_fds
                                                         : VFU_MAX_RX_FDS;
    /* The client's bound on what we send it; ours on what it sends us. */
    c->max_data_xfer_size = client.max_data_xfer_size < VFU_MAX_DATA_XFER_LIMIT
                                ? client.max_data_xfer_size
                                : VFU_MAX_DATA_XFER_LIMIT;
    /* The device's limit, which bounds the client, never the client's:
     * announced up to 65,535, the most QEMU accepts hearing. */
    c->max_dma_maps = ctx->max_dma_maps < VFU_DEFAULT_MAX_DMA_MAPS
                          ? ctx->max_dma_maps : VFU_DEFAULT_MAX_DMA_MAPS;
    c->pgsizes = VFU_DEFAULT_PGSIZE;
    c->has_migration = vfu_migration_enabled(ctx);
    c->migr_pgsize = VFU_DEFAULT_PGSIZE;
    c->migr_max_bitmap_size = client.migr_max_bitmap_size < VFU_MIGR_MAX_BITMAP_SIZE
                                  ? client.migr_max_bitmap_size
                                  : VFU_MIGR_MAX_BITMAP_SIZE;
    /* Features are announced only if proposed. Migration is the exception:
     * it is announced whenever the device has it, as libvfio-user does
     * (its tests expect migration.pgsize in the reply to a VERSION with no
     * JSON at all), for the client learns the dirty page size from it. */
    c->write_multiple = client.write_multiple;
    int twin_fd = agree_twin(ctx, msg, &client);

    /* Reply caps: the bounds the client must respect when sending to us. */
    struct vfu_client_caps ours = *c;
    ours.max_msg_fds = VFU_DEFAULT_MAX_FDS;
    ours.max_data_xfer_size = VFU_DEFAULT_MAX_DATA_XFER;

    struct vfio_user_version *out = (void *)ctx->version_reply;
    out->major = 0;
    out->minor = in->minor < c->minor ? in->minor : c->minor;
    ssize_t n = vfu_caps_format(&ours, (char *)out->data,
                                sizeof(ctx->version_reply) - sizeof(*out));
    if (n < 0) {
        int err = errno;
        if (twin_fd >= 0) {
            close(twin_fd);
            vfu_twin_close(ctx);
        }
        errno = err;
        return -1;
    }
    if (twin_fd >= 0) {
        /* The reply carries the client's end and closes our copy once sent. */
        msg->out_owned_fd = twin_fd;
        msg->out_fds = &msg->out_owned_fd;
        msg->nr_out_fds = 1;
    }
    ctx->negotiated = true;
    vfu_log(ctx, LOG_DEBUG, "negotiated version %u.%u: %s", out->major,
            out->minor, (char *)out->data);
    return vfu_msg_reply_add(msg, out, sizeof(*out) + (size_t)n);
}
