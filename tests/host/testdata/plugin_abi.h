/*
 * The plugin's side of the Fluent Bit 5.1.1 Go-proxy input ABI, for the C
 * test plugins used by the host self-tests.  Declared the way a plugin
 * author would (correct input-context layout: remote_context at offset 8).
 */
#ifndef TEST_PLUGIN_ABI_H
#define TEST_PLUGIN_ABI_H

#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FLB_ERROR 0
#define FLB_OK    1
#define FLB_RETRY 2

#define FLB_PROXY_INPUT_PLUGIN 1
#define FLB_PROXY_GOLANG       11

struct flb_plugin_proxy_def {
    int type;
    int proxy;
    int flags;
    char *name;
    char *description;
    int event_type;
    void *config_map;
};

struct flb_api {
    const char *(*output_get_property)(const char *, void *);
    const char *(*input_get_property)(const char *, void *);
    void *(*output_get_cmt_instance)(void *);
    void *(*input_get_cmt_instance)(void *);
    void (*log_print)(int, const char *, int, const char *, ...);
    int (*input_log_check)(void *, int);
    int (*output_log_check)(void *, int);
    const char *(*custom_get_property)(const char *, void *);
    int (*custom_log_check)(void *, int);
};

struct in_ctx {
    int coll_fd;
    void *remote_context;
    void *proxy;
};

struct in_plugin {
    char *name;
    struct flb_api *api;
    void *i_ins;
    struct in_ctx *context;
};

static inline int tp_gettid(void)
{
    return (int) syscall(SYS_gettid);
}

/* ---- a tiny msgpack writer ---- */
struct mpw {
    unsigned char *b;
    size_t len;
    size_t cap;
};

static inline void mpw_raw(struct mpw *w, const void *p, size_t n)
{
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n) {
            cap *= 2;
        }
        w->b = realloc(w->b, cap);
        if (!w->b) {
            abort();
        }
        w->cap = cap;
    }
    memcpy(w->b + w->len, p, n);
    w->len += n;
}

static inline void mpw_byte(struct mpw *w, unsigned char c)
{
    mpw_raw(w, &c, 1);
}

static inline void mpw_be(struct mpw *w, uint64_t v, int n)
{
    int i;
    for (i = n - 1; i >= 0; i--) {
        mpw_byte(w, (unsigned char) (v >> (8 * i)));
    }
}

static inline void mpw_array(struct mpw *w, uint32_t n)
{
    if (n < 16) {
        mpw_byte(w, (unsigned char) (0x90 | n));
    }
    else if (n < 65536) {
        mpw_byte(w, 0xdc);
        mpw_be(w, n, 2);
    }
    else {
        mpw_byte(w, 0xdd);
        mpw_be(w, n, 4);
    }
}

static inline void mpw_map(struct mpw *w, uint32_t n)
{
    if (n < 16) {
        mpw_byte(w, (unsigned char) (0x80 | n));
    }
    else if (n < 65536) {
        mpw_byte(w, 0xde);
        mpw_be(w, n, 2);
    }
    else {
        mpw_byte(w, 0xdf);
        mpw_be(w, n, 4);
    }
}

static inline void mpw_str(struct mpw *w, const char *s)
{
    size_t n = strlen(s);
    if (n < 32) {
        mpw_byte(w, (unsigned char) (0xa0 | n));
    }
    else if (n < 256) {
        mpw_byte(w, 0xd9);
        mpw_byte(w, (unsigned char) n);
    }
    else if (n < 65536) {
        mpw_byte(w, 0xda);
        mpw_be(w, n, 2);
    }
    else {
        mpw_byte(w, 0xdb);
        mpw_be(w, n, 4);
    }
    mpw_raw(w, s, n);
}

static inline void mpw_uint(struct mpw *w, uint64_t v)
{
    if (v < 128) {
        mpw_byte(w, (unsigned char) v);
    }
    else if (v < 256) {
        mpw_byte(w, 0xcc);
        mpw_be(w, v, 1);
    }
    else if (v < 65536) {
        mpw_byte(w, 0xcd);
        mpw_be(w, v, 2);
    }
    else if (v < 4294967296ULL) {
        mpw_byte(w, 0xce);
        mpw_be(w, v, 4);
    }
    else {
        mpw_byte(w, 0xcf);
        mpw_be(w, v, 8);
    }
}

static inline void mpw_int(struct mpw *w, int64_t v)
{
    if (v >= 0) {
        mpw_uint(w, (uint64_t) v);
    }
    else if (v >= -32) {
        mpw_byte(w, (unsigned char) (int8_t) v);
    }
    else {
        mpw_byte(w, 0xd3);
        mpw_be(w, (uint64_t) v, 8);
    }
}

static inline void mpw_f64(struct mpw *w, double d)
{
    uint64_t bits;
    memcpy(&bits, &d, 8);
    mpw_byte(w, 0xcb);
    mpw_be(w, bits, 8);
}

static inline void mpw_f32(struct mpw *w, float f)
{
    uint32_t bits;
    memcpy(&bits, &f, 4);
    mpw_byte(w, 0xca);
    mpw_be(w, bits, 4);
}

static inline void mpw_ext(struct mpw *w, int8_t type, const void *p, uint32_t n)
{
    if (n == 1 || n == 2 || n == 4 || n == 8 || n == 16) {
        unsigned char c = n == 1 ? 0xd4 : n == 2 ? 0xd5 : n == 4 ? 0xd6 : n == 8 ? 0xd7 : 0xd8;
        mpw_byte(w, c);
    }
    else {
        mpw_byte(w, 0xc7);
        mpw_byte(w, (unsigned char) n);
    }
    mpw_byte(w, (unsigned char) type);
    mpw_raw(w, p, n);
}

/* EventTime: ext type 0, big-endian uint32 seconds + uint32 nanoseconds */
static inline void mpw_eventtime(struct mpw *w, uint32_t sec, uint32_t nsec)
{
    unsigned char t[8];
    int i;
    for (i = 0; i < 4; i++) {
        t[i] = (unsigned char) (sec >> (24 - 8 * i));
        t[4 + i] = (unsigned char) (nsec >> (24 - 8 * i));
    }
    mpw_ext(w, 0, t, 8);
}

#endif
