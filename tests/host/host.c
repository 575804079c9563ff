/*
 * host.c - a stand-in for Fluent Bit 5.1.1 that drives a Go-proxy *input*
 * plugin (.so) through the same ABI, so the plugin can be tested in CI where
 * Fluent Bit itself cannot run.
 *
 * The behaviour emulated here was read from the Fluent Bit v5.1.1 sources
 * (src/flb_plugin_proxy.c, src/proxy/go/go.c, src/flb_input.c,
 * src/flb_input_thread.c, src/flb_log_event_decoder.c, src/flb_reload.c,
 * src/fluent-bit.c, lib/msgpack-c) and from measurements of
 * a real Fluent Bit 5.1.1 process.  No Fluent Bit code is copied:
 * only the struct layouts the plugin sees are declared again here.
 *
 * Build: gcc -O2 -g -Wall -Wextra -rdynamic -o host host.c -ldl -lpthread
 * Usage: host <plugin.so> [-records <path>] [-log <path>] [-log-level <lvl>]
 *             [-hot-reload] [-pause-last-instance]
 *
 * Protocol: one command per line on stdin, exactly one answer line on stdout
 * ("ok <cmd> ..." or "err <cmd> <reason>").  Lines starting with "event " are
 * unsolicited notifications (a reload triggered by SIGHUP).  See README.md.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------- */
/* ABI seen by the plugin (same layouts as Fluent Bit 5.1.1)                  */
/* ------------------------------------------------------------------------- */

/* lib/monkey/include/monkey/mk_core/mk_list.h: circular doubly linked list */
struct mk_list {
    struct mk_list *prev;
    struct mk_list *next;
};

/* include/fluent-bit/flb_kv.h */
struct flb_kv {
    char *key;
    char *val;
    struct mk_list _head;
};

/* include/fluent-bit/flb_plugin_proxy.h */
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

struct flb_input_instance;
struct flb_output_instance;
struct flb_custom_instance;
struct host_proxy;

struct flb_plugin_input_proxy_context {
    int coll_fd;            /* collector id, written after FLBPluginInit */
    void *remote_context;   /* handed to the *Ctx callbacks              */
    struct host_proxy *proxy;
};

/* include/fluent-bit/flb_api.h */
struct flb_api {
    const char *(*output_get_property)(const char *, struct flb_output_instance *);
    const char *(*input_get_property)(const char *, struct flb_input_instance *);
    void *(*output_get_cmt_instance)(struct flb_output_instance *);
    void *(*input_get_cmt_instance)(struct flb_input_instance *);
    void (*log_print)(int, const char *, int, const char *, ...);
    int (*input_log_check)(struct flb_input_instance *, int);
    int (*output_log_check)(struct flb_output_instance *, int);
    const char *(*custom_get_property)(const char *, struct flb_custom_instance *);
    int (*custom_log_check)(struct flb_custom_instance *, int);
};

/* src/proxy/go/go.h */
struct flbgo_input_plugin {
    char *name;
    void *api;
    void *i_ins;
    struct flb_plugin_input_proxy_context *context;

    int (*cb_init)(struct flbgo_input_plugin *);
    int (*cb_collect)(void **, size_t *);
    int (*cb_collect_ctx)(void *, void **, size_t *);
    int (*cb_cleanup)(void *);
    int (*cb_cleanup_ctx)(void *, void *);
    int (*cb_exit)(void);
};

/* Our own input instance.  The plugin only ever sees it as an opaque pointer
 * passed back to the API functions; `properties` is deliberately not the
 * first field. */
#define INS_MAGIC_LIVE 0x666c62696e4c4956ULL
#define INS_MAGIC_DEAD 0x666c62696e444541ULL
struct hinst;
struct flb_input_instance {
    uint64_t magic;
    int id;                  /* numeric part of the name            */
    int log_level;
    int flags;
    int is_threaded;
    char name[32];           /* "<plugin>.<id>"                     */
    char *alias;
    char *tag;
    struct flb_plugin_input_proxy_context *context;
    struct host_proxy *p;
    struct mk_list properties;   /* struct flb_kv, plugin properties */
    struct hinst *h;
};

/* Fluent Bit log levels */
#define FLB_LOG_OFF    0
#define FLB_LOG_ERROR  1
#define FLB_LOG_WARN   2
#define FLB_LOG_INFO   3
#define FLB_LOG_DEBUG  4
#define FLB_LOG_TRACE  5
#define FLB_LOG_HELP   6
#define FLB_LOG_IDEBUG 10

#define FLB_IO_TLS          2
#define FLB_INPUT_THREADED  1024

/* ------------------------------------------------------------------------- */
/* Host state                                                                */
/* ------------------------------------------------------------------------- */

/* One registration of the .so (a new one on every reload), the equivalent of
 * struct flb_plugin_proxy + struct flbgo_input_plugin. */
struct host_proxy {
    void *dso;
    struct flb_plugin_proxy_def *def;
    struct flb_api *api;
    struct flbgo_input_plugin *plugin;   /* shared by all instances */
    struct flb_input_instance *instance; /* last initialised instance */
    char *name;
    int flags;
    int gen;

    int (*cb_pre_run)(int);
    void (*cb_pause)(void);
    void (*cb_resume)(void);
    void (*cb_pre_exit)(int);
    void (*cb_unregister)(void *);
};

enum job_type {
    J_INIT = 1,
    J_PRERUN,
    J_COLLECT,
    J_DRAIN,
    J_PAUSE,
    J_RESUME,
    J_EXIT,
    J_TERMINATE
};

struct job {
    int type;
    struct hinst *h;
    /* J_DRAIN: a set of instances of this worker */
    struct hinst **set;
    int nset;
    long n;
    long target;
    long timeout_ms;
    long interval_ms;
    int arg;
    /* results */
    int ret;
    int failed;            /* 1: error, message in msg */
    int timeout;
    char msg[1024];
    uint64_t records, bytes, buffers, calls;
    uint64_t *set_records; /* per instance of the set */
    uint64_t *set_calls;
    int terminate;         /* worker ends after this job */
    int done;
    struct job *next;
};

/* A thread that runs plugin callbacks: one per threaded instance, or the
 * shared "engine" thread for instances with `threaded off`. */
struct worker {
    pthread_t th;
    pid_t tid;
    int shared;
    int gen;
    char thname[16];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *head;
    struct job *tail;
    int started;
    int finished;
    int joined;
    int ready;
};

enum {
    ST_NEW = 0,
    ST_RUNNING,
    ST_EXITED,
    ST_FAILED
};

struct hinst {
    int idx;
    int gen;
    int state;
    int buf_paused;     /* flb_input_buf_paused(): set by 'pause'  */
    int coll_paused;    /* collector paused: collect is refused    */
    struct flb_input_instance *ins;
    struct flb_plugin_input_proxy_context *ctx;
    struct host_proxy *px;
    struct worker *w;
    int nprops;
    char **pk;
    char **pv;
    /* counters, protected by g_mu */
    uint64_t records, bytes, buffers, calls;
};

static const char *g_so_path;
static int g_records_fd = -1;
static int g_log_fd = 2;
static int g_default_log_level = FLB_LOG_INFO;
static int g_enable_hot_reload;
static int g_pause_last_instance;
static pid_t g_main_tid;

static struct host_proxy *g_px;      /* current registration */
static int g_registered;
static int g_aborted;                /* Fluent Bit would have exited     */
static char g_abort_reason[700];
static int g_gen;

static struct hinst **g_inst;
static int g_ninst;
static struct worker *g_engine;      /* shared worker, threaded=off     */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;   /* counters */
static uint64_t g_records, g_buffers, g_bytes, g_calls, g_groups;
static uint64_t g_invalid, g_leaks, g_misuse, g_slow;
static uint64_t g_max_collect_us;

/* every flb_input_instance ever created, to validate pointers given back */
static pthread_mutex_t g_reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct flb_input_instance **g_all_ins;
static int g_nall_ins;

static pthread_mutex_t g_log_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t g_rec_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t g_err_mu = PTHREAD_MUTEX_INITIALIZER;

static __thread int tl_in_init;
static __thread int tl_warned_late;

static int g_sigpipe[2] = { -1, -1 };

/* ------------------------------------------------------------------------- */
/* small helpers                                                             */
/* ------------------------------------------------------------------------- */

static pid_t host_gettid(void)
{
    return (pid_t) syscall(SYS_gettid);
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
}

static void sleep_ms(long ms)
{
    struct timespec ts;
    if (ms <= 0) {
        return;
    }
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return;
        }
        buf += n;
        len -= (size_t) n;
    }
}

/* diagnostics for humans: stderr, one write per line */
static void errlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void errlog(const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t) n > sizeof(buf) - 2) {
        n = (int) sizeof(buf) - 2;
    }
    buf[n++] = '\n';
    pthread_mutex_lock(&g_err_mu);
    write_all(2, buf, (size_t) n);
    pthread_mutex_unlock(&g_err_mu);
}

/* answer line on stdout: main thread only */
static void reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void reply(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n, sz);
    if (!p) {
        errlog("fatal: out of memory");
        abort();
    }
    return p;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s ? s : "");
    if (!p) {
        errlog("fatal: out of memory");
        abort();
    }
    return p;
}

static void count_misuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void count_misuse(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&g_mu);
    g_misuse++;
    pthread_mutex_unlock(&g_mu);
    errlog("misuse %s (tid %d)", buf, (int) host_gettid());
}

/* every plugin call goes through this to detect blocking callbacks */
static void note_call(const char *cb, uint64_t t0)
{
    uint64_t us = now_us() - t0;
    if (us > 1000000ULL) {
        pthread_mutex_lock(&g_mu);
        g_slow++;
        pthread_mutex_unlock(&g_mu);
        errlog("warn slow %s %" PRIu64, cb, (uint64_t) (us / 1000));
    }
}

#define TIMED(cb, stmt)                  \
    do {                                 \
        uint64_t _t0 = now_us();         \
        stmt;                            \
        note_call(cb, _t0);              \
    } while (0)

/* ------------------------------------------------------------------------- */
/* mk_list / flb_kv                                                          */
/* ------------------------------------------------------------------------- */

static void mk_list_init(struct mk_list *l)
{
    l->prev = l;
    l->next = l;
}

/* append at the tail, like mk_list_add() */
static void mk_list_add(struct mk_list *n, struct mk_list *head)
{
    n->next = head;
    n->prev = head->prev;
    head->prev->next = n;
    head->prev = n;
}

#define kv_of(ptr) ((struct flb_kv *) ((char *) (ptr) - offsetof(struct flb_kv, _head)))

static void kv_add(struct mk_list *list, const char *k, const char *v)
{
    struct flb_kv *kv = xcalloc(1, sizeof(*kv));
    kv->key = xstrdup(k);
    kv->val = v ? xstrdup(v) : NULL;
    mk_list_add(&kv->_head, list);
}

/* flb_kv_get_key_value(): first case-insensitive exact match */
static const char *kv_get(const char *key, struct mk_list *list)
{
    struct mk_list *it;
    size_t len;

    if (!key) {
        return NULL;
    }
    len = strlen(key);
    if (len == 0) {
        return NULL;
    }
    for (it = list->next; it != list; it = it->next) {
        struct flb_kv *kv = kv_of(it);
        if (strlen(kv->key) != len) {
            continue;
        }
        if (strncasecmp(kv->key, key, len) == 0) {
            return kv->val;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------- */
/* instance registry: validate pointers the plugin hands back                */
/* ------------------------------------------------------------------------- */

static void registry_add(struct flb_input_instance *ins)
{
    pthread_mutex_lock(&g_reg_mu);
    g_all_ins = realloc(g_all_ins, sizeof(*g_all_ins) * (size_t) (g_nall_ins + 1));
    if (!g_all_ins) {
        errlog("fatal: out of memory");
        abort();
    }
    g_all_ins[g_nall_ins++] = ins;
    pthread_mutex_unlock(&g_reg_mu);
}

static void ins_set_magic(struct flb_input_instance *ins, uint64_t magic)
{
    pthread_mutex_lock(&g_reg_mu);
    ins->magic = magic;
    pthread_mutex_unlock(&g_reg_mu);
}

/* 1: live instance, 0: misuse counted */
static int ins_check(const struct flb_input_instance *ins, const char *fn)
{
    int i;
    int found = 0;
    uint64_t magic = 0;

    if (!ins) {
        count_misuse("%s() called with a NULL instance", fn);
        return 0;
    }
    pthread_mutex_lock(&g_reg_mu);
    for (i = 0; i < g_nall_ins; i++) {
        if (g_all_ins[i] == ins) {
            found = 1;
            magic = ins->magic;
            break;
        }
    }
    pthread_mutex_unlock(&g_reg_mu);
    if (!found) {
        count_misuse("%s() called with %p, which is not an input instance "
                     "(stale plugin->i_ins after a reload, or the wrong pointer)",
                     fn, (const void *) ins);
        return 0;
    }
    if (magic != INS_MAGIC_LIVE) {
        count_misuse("%s() called with instance %s after it was destroyed "
                     "(use after free in Fluent Bit)", fn, ins->name);
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------------- */
/* API given to the plugin (struct flb_api) and exported symbols             */
/* ------------------------------------------------------------------------- */

static const char *api_input_get_property(const char *key, struct flb_input_instance *ins)
{
    if (!ins_check(ins, "input_get_property")) {
        return NULL;
    }
    if (!tl_in_init && !tl_warned_late) {
        tl_warned_late = 1;
        errlog("note input_get_property(\"%s\") called outside FLBPluginInit on tid %d: "
               "Fluent Bit answers from plugin->i_ins, the last initialised instance",
               key ? key : "(null)", (int) host_gettid());
    }
    return kv_get(key, &ins->properties);
}

static const char *api_output_get_property(const char *key, struct flb_output_instance *ins)
{
    (void) ins;
    count_misuse("output_get_property(\"%s\") called by an input plugin", key ? key : "(null)");
    return NULL;
}

static void *api_output_get_cmt_instance(struct flb_output_instance *ins)
{
    (void) ins;
    count_misuse("output_get_cmt_instance() called by an input plugin");
    return NULL;
}

static void *api_input_get_cmt_instance(struct flb_input_instance *ins)
{
    if (!ins_check(ins, "input_get_cmt_instance")) {
        return NULL;
    }
    errlog("note input_get_cmt_instance(): the host has no cmetrics context and returns NULL");
    return NULL;
}

static const char *level_name(int type)
{
    switch (type) {
    case FLB_LOG_HELP:   return "help";
    case FLB_LOG_INFO:   return "info";
    case FLB_LOG_WARN:   return "warn";
    case FLB_LOG_ERROR:  return "error";
    case FLB_LOG_DEBUG:  return "debug";
    case FLB_LOG_IDEBUG: return "debug";
    case FLB_LOG_TRACE:  return "trace";
    default:             return "unknown";
    }
}

/* Fluent Bit renders into a 4 KiB message buffer (struct log_message) with a
 * timestamp header, so long messages are cut at about 4 KB. */
#define LOG_BODY_MAX 4040

static void api_log_print(int type, const char *file, int line, const char *fmt, ...)
{
    char body[LOG_BODY_MAX + 1];
    char out[LOG_BODY_MAX + 64];
    va_list ap;
    int n;

    (void) file;
    (void) line;
    if (!fmt) {
        count_misuse("log_print() called with a NULL format (Fluent Bit would crash)");
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    n = snprintf(out, sizeof(out), "[%s] %s\n", level_name(type), body);
    if (n < 0) {
        return;
    }
    if ((size_t) n >= sizeof(out)) {
        n = (int) sizeof(out) - 1;
        out[n - 1] = '\n';
    }
    pthread_mutex_lock(&g_log_mu);
    write_all(g_log_fd, out, (size_t) n);
    pthread_mutex_unlock(&g_log_mu);
}

static int api_input_log_check(struct flb_input_instance *ins, int l)
{
    if (!ins_check(ins, "input_log_check")) {
        return 0;
    }
    return ins->log_level < l ? 0 : 1;
}

static int api_output_log_check(struct flb_output_instance *ins, int l)
{
    (void) ins;
    count_misuse("output_log_check(%d) called by an input plugin", l);
    return 0;
}

static const char *api_custom_get_property(const char *key, struct flb_custom_instance *ins)
{
    (void) ins;
    count_misuse("custom_get_property(\"%s\") called by an input plugin", key ? key : "(null)");
    return NULL;
}

static int api_custom_log_check(struct flb_custom_instance *ins, int l)
{
    (void) ins;
    count_misuse("custom_log_check(%d) called by an input plugin", l);
    return 0;
}

/* Exported (-rdynamic) like the real fluent-bit binary does; plugins find it
 * with dlsym(RTLD_DEFAULT, "flb_input_name"). */
const char *flb_input_name(struct flb_input_instance *ins);
const char *flb_input_name(struct flb_input_instance *ins)
{
    if (!ins_check(ins, "flb_input_name")) {
        return NULL;
    }
    if (ins->alias) {
        return ins->alias;
    }
    return ins->name;
}

/* ------------------------------------------------------------------------- */
/* signals, like src/fluent-bit.c (flb_signal_init)                          */
/* ------------------------------------------------------------------------- */

static void host_signal_init(void);

static void sig_write(char c)
{
    int saved = errno;
    if (g_sigpipe[1] >= 0) {
        ssize_t r = write(g_sigpipe[1], &c, 1);
        (void) r;
    }
    errno = saved;
}

static void sig_break_loop(int sig)
{
    (void) sig;
    sig_write('q');
}

static void sig_handler(int sig)
{
    static const char pre[] = "[engine] caught signal (";
    const char *name = "?";
    ssize_t r;

    switch (sig) {
    case SIGHUP:  name = "SIGHUP)\n"; break;
    case SIGCONT: name = "SIGCONT)\n"; break;
    case SIGSEGV: name = "SIGSEGV)\n"; break;
    case SIGFPE:  name = "SIGFPE)\n"; break;
    default:      name = "signal)\n"; break;
    }
    r = write(2, pre, sizeof(pre) - 1);
    r = write(2, name, strlen(name));
    (void) r;

    /* Fluent Bit re-runs flb_signal_init() here: this replaces the SIGSEGV
     * handler the Go runtime installed when the .so was loaded. */
    host_signal_init();

    switch (sig) {
    case SIGSEGV:
    case SIGFPE:
        abort();
    case SIGHUP:
        sig_write('h');
        break;
    default:
        break;
    }
}

static void host_signal_init(void)
{
    signal(SIGINT, sig_break_loop);
    signal(SIGQUIT, sig_break_loop);
    signal(SIGHUP, sig_handler);
    signal(SIGCONT, sig_handler);
    signal(SIGTERM, sig_break_loop);
    signal(SIGSEGV, sig_handler);
    signal(SIGFPE, sig_handler);
}

/* ------------------------------------------------------------------------- */
/* msgpack validation: the rules of src/flb_log_event_decoder.c on top of    */
/* msgpack-c's msgpack_unpack_next (MSGPACK_EMBED_STACK_SIZE=64)             */
/* ------------------------------------------------------------------------- */

enum {
    MP_NIL, MP_BOOL, MP_UINT, MP_NINT, MP_F32, MP_F64, MP_STR, MP_BIN,
    MP_ARR, MP_MAP, MP_EXT
};

static const char *mp_kind_name(int k)
{
    static const char *names[] = {
        "nil", "bool", "positive int", "negative int", "float32", "float64",
        "str", "bin", "array", "map", "ext"
    };
    if (k < 0 || k > MP_EXT) {
        return "?";
    }
    return names[k];
}

struct mpo {
    int kind;
    uint64_t u;      /* MP_UINT value */
    int64_t i;       /* MP_NINT value */
    double f;
    uint64_t n;      /* items (array/map) or payload bytes (str/bin/ext) */
    int8_t ext_type;
    size_t hdr;      /* header bytes incl. the ext type byte */
    const uint8_t *payload;
};

#define MP_OK    0
#define MP_SHORT 1   /* MSGPACK_UNPACK_CONTINUE: insufficient data */
#define MP_PARSE 2   /* MSGPACK_UNPACK_PARSE_ERROR / NOMEM_ERROR    */

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    int i;
    for (i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* decode the header of the object at b[off] */
static int mp_head(const uint8_t *b, size_t len, size_t off, struct mpo *o)
{
    uint8_t c;
    size_t avail;
    int lenbytes = 0;

    memset(o, 0, sizeof(*o));
    if (off >= len) {
        return MP_SHORT;
    }
    avail = len - off;
    c = b[off];

#define NEED(x) do { if (avail < (size_t) (x)) return MP_SHORT; } while (0)
    if (c <= 0x7f) {
        o->kind = MP_UINT; o->u = c; o->hdr = 1; return MP_OK;
    }
    if (c >= 0xe0) {
        o->kind = MP_NINT; o->i = (int8_t) c; o->hdr = 1; return MP_OK;
    }
    if (c >= 0x80 && c <= 0x8f) {
        o->kind = MP_MAP; o->n = c & 0x0f; o->hdr = 1; return MP_OK;
    }
    if (c >= 0x90 && c <= 0x9f) {
        o->kind = MP_ARR; o->n = c & 0x0f; o->hdr = 1; return MP_OK;
    }
    if (c >= 0xa0 && c <= 0xbf) {
        o->kind = MP_STR; o->n = c & 0x1f; o->hdr = 1;
        goto payload;
    }
    switch (c) {
    case 0xc0: o->kind = MP_NIL; o->hdr = 1; return MP_OK;
    case 0xc2: case 0xc3: o->kind = MP_BOOL; o->hdr = 1; return MP_OK;
    case 0xc4: case 0xc5: case 0xc6:
        lenbytes = 1 << (c - 0xc4);
        NEED(1 + lenbytes);
        o->kind = MP_BIN; o->n = be(b + off + 1, lenbytes); o->hdr = 1 + (size_t) lenbytes;
        goto payload;
    case 0xc7: case 0xc8: case 0xc9:
        lenbytes = 1 << (c - 0xc7);
        NEED(1 + lenbytes);
        o->kind = MP_EXT; o->n = be(b + off + 1, lenbytes);
        if (c == 0xc9 && o->n == 0xffffffffULL) {
            /* size+1 overflows to 0 in msgpack-c: template_callback_ext fails */
            return MP_PARSE;
        }
        NEED(2 + lenbytes);
        o->ext_type = (int8_t) b[off + 1 + lenbytes];
        o->hdr = 2 + (size_t) lenbytes;
        goto payload;
    case 0xca: NEED(5); o->kind = MP_F32; o->hdr = 5;
        {
            uint32_t bits = (uint32_t) be(b + off + 1, 4);
            float fv;
            memcpy(&fv, &bits, 4);
            o->f = fv;
        }
        return MP_OK;
    case 0xcb: NEED(9); o->kind = MP_F64; o->hdr = 9;
        {
            uint64_t bits = be(b + off + 1, 8);
            memcpy(&o->f, &bits, 8);
        }
        return MP_OK;
    case 0xcc: case 0xcd: case 0xce: case 0xcf:
        lenbytes = 1 << (c - 0xcc);
        NEED(1 + lenbytes);
        o->kind = MP_UINT; o->u = be(b + off + 1, lenbytes); o->hdr = 1 + (size_t) lenbytes;
        return MP_OK;
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        int64_t v;
        lenbytes = 1 << (c - 0xd0);
        NEED(1 + lenbytes);
        switch (lenbytes) {
        case 1: v = (int8_t) be(b + off + 1, 1); break;
        case 2: v = (int16_t) be(b + off + 1, 2); break;
        case 4: v = (int32_t) be(b + off + 1, 4); break;
        default: v = (int64_t) be(b + off + 1, 8); break;
        }
        o->hdr = 1 + (size_t) lenbytes;
        /* msgpack-c types non-negative signed ints as POSITIVE_INTEGER */
        if (v >= 0) {
            o->kind = MP_UINT; o->u = (uint64_t) v;
        }
        else {
            o->kind = MP_NINT; o->i = v;
        }
        return MP_OK;
    }
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        NEED(2);
        o->kind = MP_EXT; o->n = (uint64_t) 1 << (c - 0xd4);
        o->ext_type = (int8_t) b[off + 1]; o->hdr = 2;
        goto payload;
    case 0xd9: case 0xda: case 0xdb:
        lenbytes = 1 << (c - 0xd9);
        NEED(1 + lenbytes);
        o->kind = MP_STR; o->n = be(b + off + 1, lenbytes); o->hdr = 1 + (size_t) lenbytes;
        goto payload;
    case 0xdc: case 0xdd:
        lenbytes = c == 0xdc ? 2 : 4;
        NEED(1 + lenbytes);
        o->kind = MP_ARR; o->n = be(b + off + 1, lenbytes); o->hdr = 1 + (size_t) lenbytes;
        return MP_OK;
    case 0xde: case 0xdf:
        lenbytes = c == 0xde ? 2 : 4;
        NEED(1 + lenbytes);
        o->kind = MP_MAP; o->n = be(b + off + 1, lenbytes); o->hdr = 1 + (size_t) lenbytes;
        return MP_OK;
    default:
        /* 0xc1 is never used */
        return MP_PARSE;
    }
payload:
    if (avail < o->hdr || avail - o->hdr < o->n) {
        return MP_SHORT;
    }
    o->payload = b + off + o->hdr;
    return MP_OK;
#undef NEED
}

struct verr {
    size_t off;
    char why[256];
};

#define MP_MAX_STACK 64  /* cmake/msgpack.cmake: MSGPACK_EMBED_STACK_SIZE=64 */

/* skip one complete object; `top` = open containers (msgpack-c's stack) */
static int mp_skip(const uint8_t *b, size_t len, size_t *off, unsigned top, struct verr *e)
{
    struct mpo o;
    int r;
    uint64_t items;
    uint64_t i;

    r = mp_head(b, len, *off, &o);
    if (r == MP_SHORT) {
        e->off = *off;
        snprintf(e->why, sizeof(e->why),
                 "insufficient data: object at byte %zu is truncated (buffer is %zu bytes)",
                 *off, len);
        return r;
    }
    if (r == MP_PARSE) {
        e->off = *off;
        snprintf(e->why, sizeof(e->why), "deserialization failure: bad msgpack byte 0x%02x at byte %zu",
                 b[*off], *off);
        return r;
    }
    if (o.kind == MP_ARR || o.kind == MP_MAP) {
        if (top >= MP_MAX_STACK) {
            e->off = *off;
            snprintf(e->why, sizeof(e->why),
                     "deserialization failure: containers nested deeper than %d at byte %zu "
                     "(msgpack-c MSGPACK_EMBED_STACK_SIZE)", MP_MAX_STACK, *off);
            return MP_PARSE;
        }
        *off += o.hdr;
        items = o.kind == MP_MAP ? o.n * 2 : o.n;
        for (i = 0; i < items; i++) {
            r = mp_skip(b, len, off, top + 1, e);
            if (r != MP_OK) {
                return r;
            }
        }
        return MP_OK;
    }
    *off += o.hdr + (size_t) o.n;
    return MP_OK;
}

/* float -> time_t the way x86-64 converts (out of range: INT64_MIN) */
static int64_t f64_to_sec(double f)
{
    if (f != f || f >= 9223372036854775808.0 || f < -9223372036854775808.0) {
        return INT64_MIN;
    }
    return (int64_t) f;
}

/* Validate a collect buffer.  Returns 0 and the record count, or -1 with the
 * offset of the failing event and the reason. */
static int validate(const uint8_t *b, size_t len, uint64_t *records, uint64_t *groups,
                    size_t *bad_off, char *why, size_t whylen)
{
    size_t off = 0;
    int consecutive = 0;
    uint64_t nrec = 0;
    uint64_t ngrp = 0;
    uint64_t event = 0;

    while (off < len) {
        size_t start = off;
        size_t p;
        struct verr e;
        struct mpo root, h0, ts, meta, body;
        int64_t sec;
        int r;

        event++;
        r = mp_skip(b, len, &off, 0, &e);
        if (r != MP_OK) {
            *bad_off = start;
            snprintf(why, whylen, "event #%" PRIu64 ": %s", event, e.why);
            return -1;
        }
        *bad_off = start;
        mp_head(b, len, start, &root);
        if (root.kind != MP_ARR) {
            snprintf(why, whylen, "event #%" PRIu64 ": wrong root type: %s (must be a 2-element array)",
                     event, mp_kind_name(root.kind));
            return -1;
        }
        if (root.n != 2) {
            snprintf(why, whylen, "event #%" PRIu64 ": wrong root size: %" PRIu64
                     " elements (must be 2)", event, root.n);
            return -1;
        }
        p = start + root.hdr;
        mp_head(b, len, p, &h0);
        if (h0.kind == MP_ARR) {
            size_t q;
            if (h0.n != 2) {
                snprintf(why, whylen, "event #%" PRIu64 ": wrong header size: %" PRIu64
                         " elements (must be [timestamp, metadata])", event, h0.n);
                return -1;
            }
            q = p + h0.hdr;
            mp_head(b, len, q, &ts);
            mp_skip(b, len, &q, 0, &e);
            mp_head(b, len, q, &meta);
        }
        else {
            ts = h0;
            meta.kind = MP_MAP;
        }
        mp_skip(b, len, &p, 0, &e);
        mp_head(b, len, p, &body);

        if (ts.kind != MP_UINT && ts.kind != MP_F64 && ts.kind != MP_EXT) {
            snprintf(why, whylen, "event #%" PRIu64 ": wrong timestamp type: %s%s", event,
                     mp_kind_name(ts.kind),
                     ts.kind == MP_F32 ? " (only float64 is accepted)" : "");
            return -1;
        }
        if (meta.kind != MP_MAP) {
            snprintf(why, whylen, "event #%" PRIu64 ": wrong metadata type: %s (must be a map)",
                     event, mp_kind_name(meta.kind));
            return -1;
        }
        if (body.kind != MP_MAP) {
            snprintf(why, whylen, "event #%" PRIu64 ": wrong body type: %s (must be a map)",
                     event, mp_kind_name(body.kind));
            return -1;
        }
        if (ts.kind == MP_UINT) {
            sec = (int64_t) ts.u;
        }
        else if (ts.kind == MP_F64) {
            sec = f64_to_sec(ts.f);
        }
        else {
            uint32_t s, ns;
            if (ts.ext_type != 0 || ts.n != 8) {
                snprintf(why, whylen, "event #%" PRIu64 ": wrong timestamp type: ext type %d size %"
                         PRIu64 " (EventTime is ext type 0, 8 bytes)", event, ts.ext_type, ts.n);
                return -1;
            }
            s = (uint32_t) be(ts.payload, 4);
            ns = (uint32_t) be(ts.payload + 4, 4);
            if (s == UINT32_MAX || s == UINT32_MAX - 1) {
                if (ns != 0) {
                    snprintf(why, whylen, "event #%" PRIu64 ": wrong timestamp: group marker "
                             "seconds 0x%08x with nanoseconds %u", event, s, ns);
                    return -1;
                }
                sec = s == UINT32_MAX ? -1 : -2;
            }
            else {
                if (ns >= 1000000000U) {
                    snprintf(why, whylen, "event #%" PRIu64 ": invalid EventTime: nanoseconds %u "
                             ">= 1e9", event, ns);
                    return -1;
                }
                sec = (int64_t) s;
            }
        }
        if (consecutive >= 1000) {
            snprintf(why, whylen, "event #%" PRIu64 ": more than 1000 consecutive group markers "
                     "(decoder recursion limit)", event);
            return -1;
        }
        if (sec >= 0) {
            nrec++;
            consecutive = 0;
        }
        else if (sec == -1 || sec == -2) {
            /* group start / end: accepted, but not a record */
            ngrp++;
            consecutive++;
        }
        else {
            snprintf(why, whylen, "event #%" PRIu64 ": negative timestamp %" PRId64
                     ": Fluent Bit silently skips this record", event, sec);
            return -1;
        }
    }
    *records = nrec;
    *groups = ngrp;
    return 0;
}

/* ------------------------------------------------------------------------- */
/* records output                                                            */
/* ------------------------------------------------------------------------- */

static int write_frame(int idx, const void *data, size_t len)
{
    uint8_t hdr[8];
    struct iovec iov[2];
    size_t total = 8 + len;
    size_t done = 0;
    uint32_t l = (uint32_t) len;
    uint32_t i = (uint32_t) idx;

    if (g_records_fd < 0) {
        return 0;
    }
    hdr[0] = i & 0xff; hdr[1] = (i >> 8) & 0xff; hdr[2] = (i >> 16) & 0xff; hdr[3] = i >> 24;
    hdr[4] = l & 0xff; hdr[5] = (l >> 8) & 0xff; hdr[6] = (l >> 16) & 0xff; hdr[7] = l >> 24;

    pthread_mutex_lock(&g_rec_mu);
    while (done < total) {
        ssize_t n;
        if (done < 8) {
            iov[0].iov_base = hdr + done;
            iov[0].iov_len = 8 - done;
            iov[1].iov_base = (void *) data;
            iov[1].iov_len = len;
            n = writev(g_records_fd, iov, 2);
        }
        else {
            n = write(g_records_fd, (const uint8_t *) data + (done - 8), total - done);
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            pthread_mutex_unlock(&g_rec_mu);
            errlog("error writing records file: %s", strerror(errno));
            return -1;
        }
        done += (size_t) n;
    }
    pthread_mutex_unlock(&g_rec_mu);
    return 0;
}

/* ------------------------------------------------------------------------- */
/* plugin calls (always on the instance's worker thread)                     */
/* ------------------------------------------------------------------------- */

static void hexdump_prefix(char *out, size_t outlen, const uint8_t *b, size_t len, size_t off)
{
    size_t i;
    size_t o = 0;
    for (i = off; i < len && i < off + 48 && o + 3 < outlen; i++) {
        o += (size_t) snprintf(out + o, outlen - o, "%02x", b[i]);
    }
    out[o] = '\0';
}

/* flb_proxy_input_cb_collect() + proxy_go_input_collect/cleanup() */
static int do_collect(struct hinst *h, struct job *j)
{
    struct host_proxy *px = h->px;
    struct flbgo_input_plugin *pl = px->plugin;
    struct flb_plugin_input_proxy_context *ctx = h->ctx;
    void *data = NULL;
    size_t len = 0;
    int ret = 0;
    uint64_t t0, us;
    uint64_t records = 0, groups = 0;
    size_t bad_off = 0;
    char why[512];
    int failed = 0;

    if (!pl->cb_collect_ctx && !pl->cb_collect) {
        count_misuse("plugin exports neither FLBPluginInputCallbackCtx nor FLBPluginInputCallback "
                     "(Fluent Bit would crash on the first collect)");
        snprintf(j->msg, sizeof(j->msg), "no collect callback exported");
        j->failed = 1;
        return -1;
    }

    t0 = now_us();
    if (pl->cb_collect_ctx) {
        ret = pl->cb_collect_ctx(ctx->remote_context, &data, &len);
    }
    else {
        ret = pl->cb_collect(&data, &len);
    }
    us = now_us() - t0;
    note_call(pl->cb_collect_ctx ? "FLBPluginInputCallbackCtx" : "FLBPluginInputCallback", t0);

    pthread_mutex_lock(&g_mu);
    g_calls++;
    h->calls++;
    if (us > g_max_collect_us) {
        g_max_collect_us = us;
    }
    pthread_mutex_unlock(&g_mu);
    j->calls++;

    if (len == 0) {
        if (data != NULL) {
            pthread_mutex_lock(&g_mu);
            g_leaks++;
            pthread_mutex_unlock(&g_mu);
            snprintf(j->msg, sizeof(j->msg), "leak: callback returned a non-NULL buffer with size 0 "
                     "(Fluent Bit treats it as no data and never frees it)");
            j->failed = 1;
            return -1;
        }
        return 0;
    }
    if (ret == -1) {
        if (data != NULL) {
            pthread_mutex_lock(&g_mu);
            g_leaks++;
            pthread_mutex_unlock(&g_mu);
            snprintf(j->msg, sizeof(j->msg), "leak: callback returned -1 with %zu bytes "
                     "(Fluent Bit drops the data and never calls cleanup)", len);
        }
        else {
            snprintf(j->msg, sizeof(j->msg), "callback returned -1 with size %zu and a NULL buffer", len);
        }
        j->failed = 1;
        return -1;
    }
    if (data != NULL && len > UINT32_MAX) {
        pthread_mutex_lock(&g_mu);
        g_invalid++;
        pthread_mutex_unlock(&g_mu);
        snprintf(j->msg, sizeof(j->msg), "buffer of %zu bytes: larger than the host's records "
                 "format allows (4 GiB)", len);
        j->failed = 1;
        failed = 1;
        goto cleanup;
    }
    if (data == NULL) {
        pthread_mutex_lock(&g_mu);
        g_invalid++;
        pthread_mutex_unlock(&g_mu);
        snprintf(j->msg, sizeof(j->msg), "invalid msgpack at offset 0: NULL buffer with size %zu "
                 "(Fluent Bit would crash copying it)", len);
        j->failed = 1;
        return -1;
    }

    if (validate(data, len, &records, &groups, &bad_off, why, sizeof(why)) != 0) {
        char hex[128];
        hexdump_prefix(hex, sizeof(hex), data, len, bad_off);
        pthread_mutex_lock(&g_mu);
        g_invalid++;
        pthread_mutex_unlock(&g_mu);
        snprintf(j->msg, sizeof(j->msg), "invalid msgpack at offset %zu: %s", bad_off, why);
        errlog("invalid buffer from instance %d: %zu bytes, at offset %zu: %s (bytes: %s)",
               h->idx, len, bad_off, why, hex);
        failed = 1;
    }
    else {
        write_frame(h->idx, data, len);
        pthread_mutex_lock(&g_mu);
        g_records += records;
        g_groups += groups;
        g_buffers++;
        g_bytes += len;
        h->records += records;
        h->buffers++;
        h->bytes += len;
        pthread_mutex_unlock(&g_mu);
        j->records += records;
        j->bytes += len;
        j->buffers++;
    }

cleanup:
    /* Fluent Bit ignores the append result and always cleans up */
    if (pl->cb_cleanup_ctx) {
        TIMED("FLBPluginInputCleanupCallbackCtx", ret = pl->cb_cleanup_ctx(ctx->remote_context, data));
    }
    else if (pl->cb_cleanup) {
        TIMED("FLBPluginInputCleanupCallback", ret = pl->cb_cleanup(data));
    }
    else {
        free(data);
    }

    if (failed) {
        j->failed = 1;
        return -1;
    }
    return 0;
}

static void run_drain(struct job *j)
{
    uint64_t start = now_us();
    uint64_t deadline = start + (uint64_t) (j->timeout_ms > 0 ? j->timeout_ms : 0) * 1000ULL;
    int i;

    for (;;) {
        int all = 1;
        for (i = 0; i < j->nset; i++) {
            if ((long) j->set_records[i] < j->target) {
                all = 0;
            }
        }
        if (all) {
            break;
        }
        if (now_us() >= deadline) {
            j->timeout = 1;
            break;
        }
        for (i = 0; i < j->nset; i++) {
            struct hinst *h = j->set[i];
            uint64_t before = j->records;
            uint64_t before_calls = j->calls;
            if ((long) j->set_records[i] >= j->target) {
                continue;
            }
            if (do_collect(h, j) != 0) {
                char tmp[sizeof(j->msg) + 16];
                snprintf(tmp, sizeof(tmp), "%d: %s", h->idx, j->msg);
                memcpy(j->msg, tmp, sizeof(j->msg));
                j->msg[sizeof(j->msg) - 1] = '\0';
                j->set_records[i] += j->records - before;
                j->set_calls[i] += j->calls - before_calls;
                return;
            }
            j->set_records[i] += j->records - before;
            j->set_calls[i] += j->calls - before_calls;
        }
        if (j->interval_ms > 0) {
            int pending = 0;
            for (i = 0; i < j->nset; i++) {
                if ((long) j->set_records[i] < j->target) {
                    pending = 1;
                }
            }
            if (pending) {
                uint64_t now = now_us();
                long ms = j->interval_ms;
                if (now + (uint64_t) ms * 1000ULL > deadline) {
                    ms = now >= deadline ? 0 : (long) ((deadline - now + 999) / 1000);
                }
                sleep_ms(ms);
            }
        }
    }
}

static void set_collector_paused(struct hinst *h, int paused)
{
    /* flb_input_collector_pause(ctx->coll_fd, ctx->proxy->instance): Fluent
     * Bit pauses collector 0 of the LAST initialised instance (multi-instance
     * bug).  Default: pause the instance itself, as the brief asks. */
    if (g_pause_last_instance && h->px->instance && h->px->instance->h) {
        h->px->instance->h->coll_paused = paused;
    }
    else {
        h->coll_paused = paused;
    }
}

static void exec_job(struct worker *w, struct job *j)
{
    struct hinst *h = j->h;
    struct host_proxy *px = h ? h->px : NULL;

    switch (j->type) {
    case J_INIT: {
        struct flbgo_input_plugin *pl = px->plugin;
        int ret;
        /* flb_proxy_input_cb_init() + proxy_go_input_init() */
        px->instance = h->ins;
        pl->api = px->api;
        pl->i_ins = h->ins;
        pl->context = h->ctx;
        tl_in_init = 1;
        TIMED("FLBPluginInit", ret = pl->cb_init(pl));
        tl_in_init = 0;
        j->ret = ret;
        if (ret <= 0) {
            /* init_error: flb_free(pc); the input thread returns */
            memset(h->ctx, 0x5a, sizeof(*h->ctx));
            h->ins->context = NULL;
            j->failed = 1;
            if (!w->shared) {
                j->terminate = 1;
            }
            break;
        }
        /* pc->coll_fd = flb_input_set_collector_time(...): always 0 */
        h->ctx->coll_fd = 0;
        break;
    }
    case J_PRERUN:
        j->ret = -1;
        if (px->cb_pre_run) {
            TIMED("FLBPluginInputPreRun", j->ret = px->cb_pre_run(j->arg));
        }
        break;
    case J_COLLECT: {
        long i;
        for (i = 0; i < j->n; i++) {
            if (do_collect(h, j) != 0) {
                break;
            }
        }
        break;
    }
    case J_DRAIN:
        run_drain(j);
        break;
    case J_PAUSE:
        if (px->cb_pause) {
            TIMED("FLBPluginInputPause", px->cb_pause());
        }
        set_collector_paused(h, 1);
        break;
    case J_RESUME:
        if (px->cb_resume) {
            TIMED("FLBPluginInputResume", px->cb_resume());
        }
        set_collector_paused(h, 0);
        break;
    case J_EXIT:
        /* flb_proxy_input_cb_exit(): pre-exit, then proxy_go_input_destroy() */
        if (px->cb_pre_exit) {
            TIMED("FLBPluginInputPreExit", px->cb_pre_exit(j->arg));
        }
        if (px->plugin->cb_exit) {
            TIMED("FLBPluginExit", j->ret = px->plugin->cb_exit());
        }
        if (!w->shared) {
            j->terminate = 1;
        }
        break;
    case J_TERMINATE:
        j->terminate = 1;
        break;
    default:
        break;
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    prctl(PR_SET_NAME, w->thname, 0, 0, 0);
    pthread_mutex_lock(&w->mu);
    w->tid = host_gettid();
    w->ready = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);

    for (;;) {
        struct job *j;
        int terminate;

        pthread_mutex_lock(&w->mu);
        while (!w->head) {
            pthread_cond_wait(&w->cv, &w->mu);
        }
        j = w->head;
        w->head = j->next;
        if (!w->head) {
            w->tail = NULL;
        }
        pthread_mutex_unlock(&w->mu);

        exec_job(w, j);

        pthread_mutex_lock(&w->mu);
        terminate = j->terminate;
        j->done = 1;
        if (terminate) {
            w->finished = 1;
        }
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        if (terminate) {
            break;
        }
    }
    return NULL;
}

static struct worker *worker_new(const char *name, int shared, int gen)
{
    struct worker *w = xcalloc(1, sizeof(*w));
    pthread_attr_t attr;

    w->shared = shared;
    w->gen = gen;
    snprintf(w->thname, sizeof(w->thname), "%s", name);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 8 * 1024 * 1024);
    if (pthread_create(&w->th, &attr, worker_main, w) != 0) {
        errlog("fatal: pthread_create failed");
        abort();
    }
    pthread_attr_destroy(&attr);
    w->started = 1;
    pthread_mutex_lock(&w->mu);
    while (!w->ready) {
        pthread_cond_wait(&w->cv, &w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return w;
}

static void job_post(struct worker *w, struct job *j)
{
    j->done = 0;
    j->next = NULL;
    pthread_mutex_lock(&w->mu);
    if (w->tail) {
        w->tail->next = j;
    }
    else {
        w->head = j;
    }
    w->tail = j;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void job_wait(struct worker *w, struct job *j)
{
    pthread_mutex_lock(&w->mu);
    while (!j->done) {
        pthread_cond_wait(&w->cv, &w->mu);
    }
    pthread_mutex_unlock(&w->mu);
}

static void worker_join(struct worker *w)
{
    if (w && w->started && w->finished && !w->joined) {
        pthread_join(w->th, NULL);
        w->joined = 1;
    }
}

static void run_job(struct worker *w, struct job *j)
{
    job_post(w, j);
    job_wait(w, j);
    if (j->terminate) {
        worker_join(w);
    }
}

static void simple_job(struct hinst *h, int type, int arg, struct job *j)
{
    memset(j, 0, sizeof(*j));
    j->type = type;
    j->h = h;
    j->arg = arg;
    run_job(h->w, j);
}

/* ------------------------------------------------------------------------- */
/* registration (flb_plugin_proxy_create / _register, proxy_go_input_*)      */
/* ------------------------------------------------------------------------- */

static void *sym(void *dso, const char *name)
{
    void *s;
    dlerror();
    s = dlsym(dso, name);
    if (dlerror() != NULL) {
        return NULL;
    }
    return s;
}

static struct flb_api *api_new(void)
{
    struct flb_api *api = xcalloc(1, sizeof(*api));
    api->output_get_property = api_output_get_property;
    api->input_get_property = api_input_get_property;
    api->output_get_cmt_instance = api_output_get_cmt_instance;
    api->input_get_cmt_instance = api_input_get_cmt_instance;
    api->log_print = api_log_print;
    api->input_log_check = api_input_log_check;
    api->output_log_check = api_output_log_check;
    api->custom_get_property = api_custom_get_property;
    api->custom_log_check = api_custom_log_check;
    return api;
}

/* returns NULL and fills err on failure */
static struct host_proxy *proxy_load(int hot_reloading, char *err, size_t errlen)
{
    struct host_proxy *px;
    struct flbgo_input_plugin *pl;
    int (*pre_register)(int);
    int (*do_register)(void *);
    int (*cb_init)(struct flbgo_input_plugin *);
    int ret = 0;
    void *dso;

    dso = dlopen(g_so_path, RTLD_LAZY);
    if (!dso) {
        snprintf(err, errlen, "dlopen: %s", dlerror());
        return NULL;
    }
    px = xcalloc(1, sizeof(*px));
    px->dso = dso;
    px->api = api_new();
    px->def = xcalloc(1, sizeof(*px->def));
    px->def->type = 0;

    pre_register = (int (*)(int)) sym(dso, "FLBPluginPreRegister");
    if (pre_register) {
        TIMED("FLBPluginPreRegister", ret = pre_register(hot_reloading));
        if (ret == -1) {
            snprintf(err, errlen, "FLBPluginPreRegister(%d) returned -1", hot_reloading);
            goto fail;
        }
    }
    do_register = (int (*)(void *)) sym(dso, "FLBPluginRegister");
    if (!do_register) {
        snprintf(err, errlen, "FLBPluginRegister is not exported");
        goto fail;
    }
    TIMED("FLBPluginRegister", ret = do_register(px->def));
    if (ret == -1) {
        snprintf(err, errlen, "FLBPluginRegister returned -1");
        goto fail;
    }
    if (px->def->proxy != FLB_PROXY_GOLANG) {
        snprintf(err, errlen, "def->proxy=%d, not FLB_PROXY_GOLANG (11): plugin not registered",
                 px->def->proxy);
        goto fail;
    }
    if (px->def->type != FLB_PROXY_INPUT_PLUGIN) {
        snprintf(err, errlen, "def->type=%d, not FLB_PROXY_INPUT_PLUGIN (1): not an input plugin",
                 px->def->type);
        goto fail;
    }
    cb_init = (int (*)(struct flbgo_input_plugin *)) sym(dso, "FLBPluginInit");
    if (!cb_init) {
        snprintf(err, errlen, "could not load FLBPluginInit symbol");
        goto fail;
    }
    if (!px->def->name) {
        snprintf(err, errlen, "def->name is NULL (Fluent Bit would crash in strdup)");
        goto fail;
    }

    pl = xcalloc(1, sizeof(*pl));
    pl->cb_init = cb_init;
    pl->cb_collect = (int (*)(void **, size_t *)) sym(dso, "FLBPluginInputCallback");
    pl->cb_collect_ctx = (int (*)(void *, void **, size_t *)) sym(dso, "FLBPluginInputCallbackCtx");
    pl->cb_cleanup = (int (*)(void *)) sym(dso, "FLBPluginInputCleanupCallback");
    pl->cb_cleanup_ctx = (int (*)(void *, void *)) sym(dso, "FLBPluginInputCleanupCallbackCtx");
    pl->cb_exit = (int (*)(void)) sym(dso, "FLBPluginExit");
    pl->name = xstrdup(px->def->name);
    px->plugin = pl;
    px->name = xstrdup(px->def->name);
    px->flags = px->def->flags | FLB_INPUT_THREADED;
    px->cb_pre_run = (int (*)(int)) sym(dso, "FLBPluginInputPreRun");
    px->cb_pause = (void (*)(void)) sym(dso, "FLBPluginInputPause");
    px->cb_resume = (void (*)(void)) sym(dso, "FLBPluginInputResume");
    px->cb_pre_exit = (void (*)(int)) sym(dso, "FLBPluginInputPreExit");
    px->cb_unregister = (void (*)(void *)) sym(dso, "FLBPluginUnregister");
    return px;

fail:
    free(px->def);
    free(px->api);
    free(px);
    dlclose(dso);
    return NULL;
}

/* flb_proxy_input_cb_destroy(): main thread */
static void proxy_unregister(struct host_proxy *px)
{
    if (px->cb_unregister) {
        TIMED("FLBPluginUnregister", px->cb_unregister(px->def));
    }
    /* proxy_go_input_unregister() + flb_plugin_proxy_destroy().  The structs
     * are poisoned and kept, not freed, so a plugin that keeps using the old
     * plugin/api/def pointers after a reload fails deterministically. */
    free(px->plugin->name);
    memset(px->plugin, 0x5a, sizeof(*px->plugin));
    memset(px->api, 0x5a, sizeof(*px->api));
    memset(px->def, 0x5a, sizeof(*px->def));
    dlclose(px->dso);
    px->dso = NULL;
}

static const char *collect_kind(struct host_proxy *px)
{
    if (px->plugin->cb_collect_ctx) {
        return "ctx";
    }
    if (px->plugin->cb_collect) {
        return "plain";
    }
    return "none";
}

static const char *cleanup_kind(struct host_proxy *px)
{
    if (px->plugin->cb_cleanup_ctx) {
        return "ctx";
    }
    if (px->plugin->cb_cleanup) {
        return "plain";
    }
    return "free";
}

/* ------------------------------------------------------------------------- */
/* properties (flb_input_set_property)                                       */
/* ------------------------------------------------------------------------- */

static int parse_bool(const char *v)
{
    if (!strcasecmp(v, "true") || !strcasecmp(v, "on") || !strcasecmp(v, "yes")) {
        return 1;
    }
    if (!strcasecmp(v, "false") || !strcasecmp(v, "off") || !strcasecmp(v, "no")) {
        return 0;
    }
    return -1;
}

static int parse_level(const char *v)
{
    if (!strcasecmp(v, "off")) return FLB_LOG_OFF;
    if (!strcasecmp(v, "error")) return FLB_LOG_ERROR;
    if (!strcasecmp(v, "warn") || !strcasecmp(v, "warning")) return FLB_LOG_WARN;
    if (!strcasecmp(v, "info")) return FLB_LOG_INFO;
    if (!strcasecmp(v, "debug")) return FLB_LOG_DEBUG;
    if (!strcasecmp(v, "trace")) return FLB_LOG_TRACE;
    return -1;
}

/* approximation of flb_utils_size_to_bytes(): number + optional K/M/G[B] */
static int parse_size(const char *v)
{
    char *end;
    double d;

    errno = 0;
    d = strtod(v, &end);
    if (end == v || errno != 0 || d < 0) {
        return -1;
    }
    if (*end == '\0') {
        return 0;
    }
    if (strchr("kKmMgG", *end) == NULL) {
        return -1;
    }
    end++;
    if (*end == 'b' || *end == 'B') {
        end++;
    }
    return *end == '\0' ? 0 : -1;
}

/* ${VAR} and ${VAR:-default} from the process environment */
static char *env_translate(const char *v)
{
    size_t cap = strlen(v) + 64;
    size_t n = 0;
    char *out = xcalloc(1, cap);
    const char *p = v;

    while (*p) {
        const char *s = strstr(p, "${");
        const char *e;
        char name[512];
        const char *val;
        const char *def = NULL;
        size_t need;
        char *sep;

        if (!s || !(e = strchr(s + 2, '}')) || (size_t) (e - s - 2) >= sizeof(name) || e == s + 2) {
            s = p + strlen(p);
            e = NULL;
        }
        need = n + (size_t) (s - p) + 1;
        if (need > cap) {
            cap = need * 2;
            out = realloc(out, cap);
        }
        memcpy(out + n, p, (size_t) (s - p));
        n += (size_t) (s - p);
        out[n] = '\0';
        if (!e) {
            break;
        }
        memcpy(name, s + 2, (size_t) (e - s - 2));
        name[e - s - 2] = '\0';
        sep = strstr(name, ":-");
        if (sep) {
            *sep = '\0';
            def = sep + 2;
        }
        val = getenv(name);
        if (!val || (def && val[0] == '\0')) {
            val = def ? def : "";
        }
        need = n + strlen(val) + 1;
        if (need > cap) {
            cap = need * 2;
            out = realloc(out, cap);
        }
        memcpy(out + n, val, strlen(val));
        n += strlen(val);
        out[n] = '\0';
        p = e + 1;
    }
    return out;
}

static int key_is(const char *k, const char *name)
{
    return strcasecmp(k, name) == 0;
}

/* apply one property like flb_input_set_property(); -1 + err on failure */
static int set_property(struct flb_input_instance *ins, const char *k, const char *v,
                        char *err, size_t errlen)
{
    char *tmp = env_translate(v);
    int r;

    if (tmp[0] == '\0') {
        free(tmp);
        tmp = NULL;
    }

#define BAD(...) do { snprintf(err, errlen, __VA_ARGS__); free(tmp); return -1; } while (0)
    if (key_is(k, "tag") && tmp) {
        free(ins->tag);
        ins->tag = tmp;
        return 0;
    }
    else if (key_is(k, "log_level") && tmp) {
        r = parse_level(tmp);
        if (r < 0) BAD("invalid log_level '%s'", tmp);
        ins->log_level = r;
    }
    else if (key_is(k, "log_suppress_interval") && tmp) {
    }
    else if (key_is(k, "routable") && tmp) {
    }
    else if (key_is(k, "alias") && tmp) {
        free(ins->alias);
        ins->alias = tmp;
        return 0;
    }
    else if (key_is(k, "mem_buf_limit") && tmp) {
        if (parse_size(tmp) < 0) BAD("invalid mem_buf_limit '%s'", tmp);
    }
    else if (key_is(k, "listen") || key_is(k, "host") || key_is(k, "port")) {
    }
    else if (key_is(k, "ipv6") && tmp) {
    }
    else if (strncasecmp(k, "net.", 4) == 0 && tmp) {
    }
    else if (strncasecmp(k, "oauth2", 6) == 0 && tmp) {
    }
    else if (key_is(k, "tls") && tmp) {
        if (parse_bool(tmp) == 1 && (ins->flags & FLB_IO_TLS) == 0) {
            BAD("%s does not support TLS ('tls %s' makes Fluent Bit fail to start)", ins->name, tmp);
        }
    }
    else if ((key_is(k, "tls.verify") || key_is(k, "tls.verify_hostname") ||
              key_is(k, "tls.debug")) && tmp) {
    }
    else if (key_is(k, "tls.verify_client_cert") && tmp) {
        if (parse_bool(tmp) < 0) BAD("invalid tls.verify_client_cert '%s'", tmp);
    }
    else if (key_is(k, "tls.vhost") || key_is(k, "tls.ca_path") || key_is(k, "tls.ca_file") ||
             key_is(k, "tls.crt_file") || key_is(k, "tls.key_file") ||
             key_is(k, "tls.key_passwd") || key_is(k, "tls.min_version") ||
             key_is(k, "tls.max_version") || key_is(k, "tls.ciphers")) {
    }
    else if (key_is(k, "storage.type") && tmp) {
        if (strcasecmp(tmp, "filesystem") && strcasecmp(tmp, "memory") && strcasecmp(tmp, "memrb")) {
            BAD("invalid storage.type '%s'", tmp);
        }
    }
    else if (key_is(k, "threaded") && tmp) {
        r = parse_bool(tmp);
        if (r < 0) BAD("invalid threaded '%s'", tmp);
        ins->is_threaded = r;
    }
    else if (key_is(k, "thread.ring_buffer.capacity") && tmp) {
        if (atoi(tmp) <= 0) BAD("invalid thread.ring_buffer.capacity '%s'", tmp);
    }
    else if (key_is(k, "thread.ring_buffer.window") && tmp) {
        r = atoi(tmp);
        if (r <= 0 || r > 100) BAD("thread.ring_buffer.window must be between 1 and 100");
    }
    else if (key_is(k, "rate_window") && tmp) {
        if (atoi(tmp) <= 0) BAD("invalid rate_window value");
    }
    else if ((key_is(k, "rate_gate") || key_is(k, "rate_gate.backpressure") ||
              key_is(k, "storage.pause_on_chunks_overlimit")) && tmp) {
        if (parse_bool(tmp) < 0) BAD("invalid %s '%s'", k, tmp);
    }
    else if (key_is(k, "rate_gate.max_bytes") && tmp) {
        if (parse_size(tmp) < 0) BAD("invalid rate_gate.max_bytes '%s'", tmp);
    }
    else if (key_is(k, "rate_gate.max_records") && tmp) {
        const char *c;
        for (c = tmp; *c; c++) {
            if (*c < '0' || *c > '9') BAD("invalid rate_gate.max_records '%s'", tmp);
        }
    }
    else if (key_is(k, "rate_gate.resume_ratio") && tmp) {
        char *end;
        double d = strtod(tmp, &end);
        if (end == tmp || *end != '\0' || !(d > 0.0 && d < 1.0)) {
            BAD("rate_gate.resume_ratio must be between 0 and 1");
        }
    }
    else {
        /* a plugin property: the value may be NULL (empty after translation) */
        kv_add(&ins->properties, k, tmp);
    }
#undef BAD
    free(tmp);
    return 0;
}

/* ------------------------------------------------------------------------- */
/* instances                                                                 */
/* ------------------------------------------------------------------------- */

static struct hinst *get_inst(const char *s, const char *cmd)
{
    char *end;
    long idx;

    if (!s) {
        reply("err %s missing instance index", cmd);
        return NULL;
    }
    idx = strtol(s, &end, 10);
    if (*end != '\0' || idx < 0 || idx >= g_ninst) {
        reply("err %s %s no such instance", cmd, s);
        return NULL;
    }
    return g_inst[idx];
}

/* instance_id() of src/flb_input.c over the inputs of this generation */
static int next_instance_id(int gen)
{
    int c = 0;
    int i;
    for (i = 0; i < g_ninst; i++) {
        struct hinst *h = g_inst[i];
        if (h->gen != gen || h->state != ST_RUNNING || !h->ins) {
            continue;
        }
        if (h->ins->id == c) {
            c++;
        }
    }
    return c;
}

static const char *state_name(struct hinst *h)
{
    switch (h->state) {
    case ST_RUNNING: return h->coll_paused ? "paused" : (h->buf_paused ? "buf-paused" : "running");
    case ST_EXITED:  return "exited";
    case ST_FAILED:  return "failed";
    default:         return "new";
    }
}

/* Create the instance (properties, context, thread) and run FLBPluginInit.
 * Returns the init return value, or INT_MIN when a property was invalid. */
static int instance_start(struct hinst *h, char *err, size_t errlen)
{
    struct flb_input_instance *ins;
    struct job j;
    int i;

    ins = xcalloc(1, sizeof(*ins));
    ins->magic = INS_MAGIC_LIVE;
    ins->h = h;
    ins->p = g_px;
    ins->flags = g_px->flags;
    ins->is_threaded = (g_px->flags & FLB_INPUT_THREADED) ? 1 : 0;
    ins->log_level = -1;
    ins->id = next_instance_id(g_gen);
    snprintf(ins->name, sizeof(ins->name) - 1, "%s.%i", g_px->name, ins->id);
    mk_list_init(&ins->properties);

    h->px = g_px;
    h->gen = g_gen;
    h->ins = ins;
    h->buf_paused = 0;
    h->coll_paused = 0;

    for (i = 0; i < h->nprops; i++) {
        if (set_property(ins, h->pk[i], h->pv[i], err, errlen) != 0) {
            h->state = ST_FAILED;
            return INT_MIN;
        }
    }
    if (ins->log_level == -1) {
        ins->log_level = g_default_log_level;
    }

    h->ctx = xcalloc(1, sizeof(*h->ctx));
    h->ctx->proxy = g_px;
    ins->context = h->ctx;
    registry_add(ins);
    h->state = ST_RUNNING;   /* counted by next_instance_id from now on */

    if (ins->is_threaded) {
        char thname[64];
        snprintf(thname, sizeof(thname), "flb-in-%s-w0", ins->name);
        h->w = worker_new(thname, 0, g_gen);
    }
    else {
        if (!g_engine || g_engine->gen != g_gen || g_engine->finished) {
            g_engine = worker_new("flb-pipeline", 1, g_gen);
        }
        h->w = g_engine;
    }

    simple_job(h, J_INIT, 0, &j);
    if (j.failed) {
        h->state = ST_FAILED;
        ins_set_magic(ins, INS_MAGIC_DEAD);
        h->ctx = NULL;
    }
    return j.ret;
}

static void abort_startup(const char *why)
{
    g_aborted = 1;
    snprintf(g_abort_reason, sizeof(g_abort_reason), "%s", why);
    errlog("startup aborted: %s (Fluent Bit exits; only FLBPluginUnregister is called)", why);
}

static void instance_exit(struct hinst *h, int arg)
{
    struct job j;
    simple_job(h, J_EXIT, arg, &j);
    h->state = ST_EXITED;
    ins_set_magic(h->ins, INS_MAGIC_DEAD);
    /* flb_free(ctx): poisoned and kept instead */
    memset(h->ctx, 0x5a, sizeof(*h->ctx));
}

/* ------------------------------------------------------------------------- */
/* command parsing                                                           */
/* ------------------------------------------------------------------------- */

/* split on blanks; tokens may contain "quoted values" (\" and \\ escapes)
 * anywhere, e.g. key="a b".  Modifies line in place. */
static int tokenize(char *line, char **tok, int max)
{
    int n = 0;
    char *r = line;

    while (*r && n < max) {
        char *w;
        while (*r == ' ' || *r == '\t' || *r == '\r') {
            r++;
        }
        if (!*r) {
            break;
        }
        tok[n++] = w = r;
        while (*r && *r != ' ' && *r != '\t' && *r != '\r') {
            if (*r == '"') {
                r++;
                while (*r && *r != '"') {
                    if (*r == '\\' && (r[1] == '"' || r[1] == '\\')) {
                        r++;
                    }
                    *w++ = *r++;
                }
                if (*r == '"') {
                    r++;
                }
            }
            else {
                *w++ = *r++;
            }
        }
        if (*r) {
            r++;
        }
        *w = '\0';
    }
    return n;
}

/* escape " and \\ for a value printed inside double quotes (static buffer) */
static const char *quote(const char *v)
{
    static char out[1024];
    size_t o = 0;
    for (; *v && o < sizeof(out) - 3; v++) {
        if (*v == '"' || *v == '\\') {
            out[o++] = '\\';
        }
        out[o++] = *v == '\n' ? ' ' : *v;
    }
    out[o] = '\0';
    return out;
}

static int not_ready(const char *cmd)
{
    if (!g_registered) {
        reply("err %s plugin not registered", cmd);
        return 1;
    }
    if (g_aborted) {
        reply("err %s startup aborted: %s", cmd, g_abort_reason);
        return 1;
    }
    return 0;
}

static int live_for(struct hinst *h, const char *cmd)
{
    if (h->state == ST_EXITED) {
        reply("err %s %d exited", cmd, h->idx);
        return 0;
    }
    if (h->state != ST_RUNNING) {
        reply("err %s %d not running (%s)", cmd, h->idx, state_name(h));
        return 0;
    }
    return 1;
}

static long arg_long(char **tok, int ntok, int i, long def, int *ok)
{
    char *end;
    long v;
    if (i >= ntok) {
        return def;
    }
    v = strtol(tok[i], &end, 10);
    if (*end != '\0' || v < 0) {
        *ok = 0;
    }
    return v;
}

static void cmd_init(char **tok, int ntok)
{
    struct hinst *h;
    char err[512];
    int ret;
    int i;
    struct job j;

    if (not_ready("init")) {
        return;
    }
    h = xcalloc(1, sizeof(*h));
    h->idx = g_ninst;
    h->nprops = 0;
    h->pk = xcalloc((size_t) ntok, sizeof(char *));
    h->pv = xcalloc((size_t) ntok, sizeof(char *));
    for (i = 1; i < ntok; i++) {
        char *eq = strchr(tok[i], '=');
        if (!eq || eq == tok[i]) {
            reply("err init bad property '%s' (want key=value)", tok[i]);
            free(h->pk);
            free(h->pv);
            free(h);
            return;
        }
        *eq = '\0';
        h->pk[h->nprops] = xstrdup(tok[i]);
        h->pv[h->nprops] = xstrdup(eq + 1);
        h->nprops++;
    }
    g_inst = realloc(g_inst, sizeof(*g_inst) * (size_t) (g_ninst + 1));
    g_inst[g_ninst++] = h;

    err[0] = '\0';
    ret = instance_start(h, err, sizeof(err));
    if (ret == INT_MIN) {
        char why[600];
        snprintf(why, sizeof(why), "instance %d: %s", h->idx, err);
        abort_startup(why);
        reply("err init %d property: %s", h->idx, err);
        return;
    }
    if (ret <= 0) {
        char why[128];
        snprintf(why, sizeof(why), "FLBPluginInit of instance %d returned %d", h->idx, ret);
        abort_startup(why);
        reply("err init %d ret=%d", h->idx, ret);
        return;
    }
    simple_job(h, J_PRERUN, g_enable_hot_reload, &j);
    reply("ok init %d ret=%d name=%s tid=%d prerun=%d threaded=%d%s%s%s", h->idx, ret,
          h->ins->name, (int) h->w->tid, j.ret, h->ins->is_threaded,
          h->ins->alias ? " alias=\"" : "", h->ins->alias ? quote(h->ins->alias) : "",
          h->ins->alias ? "\"" : "");
}

static void cmd_collect(char **tok, int ntok)
{
    struct hinst *h;
    struct job j;
    int ok = 1;
    long n;

    if (not_ready("collect")) {
        return;
    }
    if (!(h = get_inst(ntok > 1 ? tok[1] : NULL, "collect"))) {
        return;
    }
    n = arg_long(tok, ntok, 2, 1, &ok);
    if (!ok || n < 1) {
        reply("err collect %d bad count", h->idx);
        return;
    }
    if (!live_for(h, "collect")) {
        return;
    }
    if (h->coll_paused) {
        reply("err collect %d paused", h->idx);
        return;
    }
    memset(&j, 0, sizeof(j));
    j.type = J_COLLECT;
    j.h = h;
    j.n = n;
    run_job(h->w, &j);
    if (j.failed) {
        reply("err collect %d %s", h->idx, j.msg);
        return;
    }
    reply("ok collect %d calls=%" PRIu64 " records=%" PRIu64 " bytes=%" PRIu64 " buffers=%" PRIu64,
          h->idx, j.calls, j.records, j.bytes, j.buffers);
}

/* drain one or more instances; all == 1 for drain-all */
static void cmd_drain(char **tok, int ntok, int all)
{
    const char *cmd = all ? "drain-all" : "drain";
    struct hinst **set;
    struct job *jobs;
    int nset = 0;
    int njobs = 0;
    int ok = 1;
    int base = all ? 1 : 2;
    long target, timeout_ms, interval_ms;
    uint64_t t0;
    long ms;
    int i, k;
    struct hinst *one = NULL;
    char buf[8192];
    size_t o = 0;
    uint64_t total_rec = 0, total_calls = 0, total_buf = 0, total_bytes = 0;
    int failed = 0, timed_out = 0;
    char failmsg[1100];

    if (not_ready(cmd)) {
        return;
    }
    if (!all) {
        if (!(one = get_inst(ntok > 1 ? tok[1] : NULL, cmd))) {
            return;
        }
    }
    if (ntok < base + 2) {
        reply("err %s usage: %s%s <records> <timeout_ms> [interval_ms]", cmd, cmd, all ? "" : " <idx>");
        return;
    }
    target = arg_long(tok, ntok, base, 0, &ok);
    timeout_ms = arg_long(tok, ntok, base + 1, 0, &ok);
    interval_ms = arg_long(tok, ntok, base + 2, 0, &ok);
    if (!ok) {
        reply("err %s bad number", cmd);
        return;
    }

    set = xcalloc((size_t) g_ninst + 1, sizeof(*set));
    if (all) {
        for (i = 0; i < g_ninst; i++) {
            if (g_inst[i]->state == ST_RUNNING) {
                if (g_inst[i]->coll_paused) {
                    reply("err %s %d paused", cmd, i);
                    free(set);
                    return;
                }
                set[nset++] = g_inst[i];
            }
        }
        if (nset == 0) {
            reply("err %s no live instance", cmd);
            free(set);
            return;
        }
    }
    else {
        if (!live_for(one, cmd)) {
            free(set);
            return;
        }
        if (one->coll_paused) {
            reply("err %s %d paused", cmd, one->idx);
            free(set);
            return;
        }
        set[nset++] = one;
    }

    /* one job per worker (instances with threaded=off share the engine) */
    jobs = xcalloc((size_t) nset, sizeof(*jobs));
    for (i = 0; i < nset; i++) {
        struct job *j = NULL;
        for (k = 0; k < njobs; k++) {
            if (jobs[k].h->w == set[i]->w) {
                j = &jobs[k];
            }
        }
        if (!j) {
            j = &jobs[njobs++];
            j->type = J_DRAIN;
            j->h = set[i];
            j->set = xcalloc((size_t) nset, sizeof(*j->set));
            j->set_records = xcalloc((size_t) nset, sizeof(uint64_t));
            j->set_calls = xcalloc((size_t) nset, sizeof(uint64_t));
            j->target = target;
            j->timeout_ms = timeout_ms;
            j->interval_ms = interval_ms;
        }
        j->set[j->nset++] = set[i];
    }
    t0 = now_us();
    for (k = 0; k < njobs; k++) {
        job_post(jobs[k].h->w, &jobs[k]);
    }
    for (k = 0; k < njobs; k++) {
        job_wait(jobs[k].h->w, &jobs[k]);
    }
    ms = (long) ((now_us() - t0) / 1000);

    failmsg[0] = '\0';
    for (k = 0; k < njobs; k++) {
        struct job *j = &jobs[k];
        total_calls += j->calls;
        total_rec += j->records;
        total_buf += j->buffers;
        total_bytes += j->bytes;
        if (j->failed && !failed) {
            failed = 1;
            snprintf(failmsg, sizeof(failmsg), "%s", j->msg);
        }
        if (j->timeout) {
            timed_out = 1;
        }
    }
    buf[0] = '\0';
    for (i = 0; i < nset && o < sizeof(buf) - 64; i++) {
        for (k = 0; k < njobs; k++) {
            int m;
            for (m = 0; m < jobs[k].nset; m++) {
                if (jobs[k].set[m] == set[i]) {
                    o += (size_t) snprintf(buf + o, sizeof(buf) - o, " rec.%d=%" PRIu64,
                                           set[i]->idx, jobs[k].set_records[m]);
                }
            }
        }
    }

    if (all) {
        if (failed) {
            reply("err drain-all %s", failmsg);
        }
        else if (timed_out) {
            reply("err drain-all timeout records=%" PRIu64 " calls=%" PRIu64 " ms=%ld%s",
                  total_rec, total_calls, ms, buf);
        }
        else {
            reply("ok drain-all instances=%d records=%" PRIu64 " calls=%" PRIu64 " buffers=%" PRIu64
                  " bytes=%" PRIu64 " ms=%ld%s", nset, total_rec, total_calls, total_buf,
                  total_bytes, ms, buf);
        }
    }
    else {
        if (failed) {
            /* failmsg is "<idx>: <reason>" */
            const char *reason = strchr(failmsg, ':');
            reply("err drain %d %s", one->idx, reason ? reason + 2 : failmsg);
        }
        else if (timed_out) {
            reply("err drain %d timeout records=%" PRIu64 " calls=%" PRIu64 " ms=%ld",
                  one->idx, total_rec, total_calls, ms);
        }
        else {
            reply("ok drain %d records=%" PRIu64 " calls=%" PRIu64 " buffers=%" PRIu64
                  " bytes=%" PRIu64 " ms=%ld", one->idx, total_rec, total_calls, total_buf,
                  total_bytes, ms);
        }
    }
    for (k = 0; k < njobs; k++) {
        free(jobs[k].set);
        free(jobs[k].set_records);
        free(jobs[k].set_calls);
    }
    free(jobs);
    free(set);
}

static void cmd_pause_resume(char **tok, int ntok, int pause)
{
    const char *cmd = pause ? "pause" : "resume";
    struct hinst *h;
    struct job j;

    if (not_ready(cmd)) {
        return;
    }
    if (!(h = get_inst(ntok > 1 ? tok[1] : NULL, cmd))) {
        return;
    }
    if (!live_for(h, cmd)) {
        return;
    }
    if (pause) {
        if (h->buf_paused) {
            /* flb_input_pause(): "if the instance is already paused, just return" */
            reply("ok pause %d called=0", h->idx);
            return;
        }
        simple_job(h, J_PAUSE, 0, &j);
        h->buf_paused = 1;
        reply("ok pause %d called=1", h->idx);
    }
    else {
        if (!h->buf_paused) {
            reply("err resume %d not paused", h->idx);
            return;
        }
        simple_job(h, J_RESUME, 0, &j);
        h->buf_paused = 0;
        reply("ok resume %d called=1", h->idx);
    }
}

static void cmd_exit(char **tok, int ntok)
{
    struct hinst *h;

    if (not_ready("exit")) {
        return;
    }
    if (!(h = get_inst(ntok > 1 ? tok[1] : NULL, "exit"))) {
        return;
    }
    if (!live_for(h, "exit")) {
        return;
    }
    instance_exit(h, 0);
    reply("ok exit %d", h->idx);
}

/* flb_engine_stop_ingestion + flb_engine_shutdown + flb_input_exit_all */
static void stop_generation(int hot_reload)
{
    struct job j;
    int round, i;

    for (round = 0; round < 2; round++) {
        for (i = 0; i < g_ninst; i++) {
            struct hinst *h = g_inst[i];
            if (h->state != ST_RUNNING || h->buf_paused) {
                continue;
            }
            simple_job(h, J_PAUSE, 0, &j);
        }
    }
    for (i = g_ninst - 1; i >= 0; i--) {
        struct hinst *h = g_inst[i];
        if (h->state != ST_RUNNING) {
            continue;
        }
        instance_exit(h, hot_reload);
    }
    if (g_engine && !g_engine->finished) {
        memset(&j, 0, sizeof(j));
        j.type = J_TERMINATE;
        run_job(g_engine, &j);
    }
}

static void do_reload(int from_signal)
{
    const char *pfx = from_signal ? "event" : "ok";
    const char *efx = from_signal ? "event" : "err";
    struct host_proxy *npx;
    struct host_proxy *old;
    char err[512];
    uint64_t t0 = now_us();
    int *live;
    int nlive = 0;
    int i;

    if (!g_registered) {
        reply("%s reload plugin not registered", efx);
        return;
    }
    if (g_aborted) {
        reply("%s reload startup aborted: %s", efx, g_abort_reason);
        return;
    }
    /* the SIGHUP handler re-runs flb_signal_init() */
    host_signal_init();

    npx = proxy_load(1, err, sizeof(err));
    if (!npx) {
        reply("%s reload halted: %s", efx, err);
        return;
    }
    live = xcalloc((size_t) g_ninst + 1, sizeof(int));
    for (i = 0; i < g_ninst; i++) {
        if (g_inst[i]->state == ST_RUNNING) {
            live[nlive++] = i;
        }
    }
    stop_generation(1);
    old = g_px;
    proxy_unregister(old);

    g_px = npx;
    npx->gen = ++g_gen;
    g_enable_hot_reload = 1;
    for (i = 0; i < nlive; i++) {
        struct hinst *h = g_inst[live[i]];
        int ret = instance_start(h, err, sizeof(err));
        if (ret == INT_MIN || ret <= 0) {
            char why[600];
            if (ret == INT_MIN) {
                snprintf(why, sizeof(why), "reload: instance %d: %s", h->idx, err);
            }
            else {
                snprintf(why, sizeof(why), "reload: FLBPluginInit of instance %d returned %d",
                         h->idx, ret);
            }
            abort_startup(why);
            reply("%s reload aborted: %s", efx, why);
            free(live);
            return;
        }
    }
    for (i = 0; i < nlive; i++) {
        struct job j;
        simple_job(g_inst[live[i]], J_PRERUN, 1, &j);
    }
    reply("%s reload instances=%d ms=%" PRIu64, pfx, nlive, (uint64_t) ((now_us() - t0) / 1000));
    free(live);
}

static void cmd_stats(void)
{
    char buf[16384];
    size_t o = 0;
    int i;

    pthread_mutex_lock(&g_mu);
    o += (size_t) snprintf(buf + o, sizeof(buf) - o,
                           "ok stats records=%" PRIu64 " buffers=%" PRIu64 " invalid=%" PRIu64
                           " leaks=%" PRIu64 " misuse=%" PRIu64 " bytes=%" PRIu64 " calls=%" PRIu64
                           " groups=%" PRIu64 " slow=%" PRIu64 " max_collect_us=%" PRIu64
                           " instances=%d generation=%d",
                           g_records, g_buffers, g_invalid, g_leaks, g_misuse, g_bytes, g_calls,
                           g_groups, g_slow, g_max_collect_us, g_ninst, g_gen);
    for (i = 0; i < g_ninst && o < sizeof(buf) - 128; i++) {
        struct hinst *h = g_inst[i];
        o += (size_t) snprintf(buf + o, sizeof(buf) - o, " rec.%d=%" PRIu64 " state.%d=%s",
                               i, h->records, i, state_name(h));
    }
    pthread_mutex_unlock(&g_mu);
    reply("%s", buf);
}

static int exit_code(void)
{
    if (!g_registered || g_aborted) {
        return 255;
    }
    if (g_invalid || g_leaks || g_misuse) {
        return 1;
    }
    return 0;
}

static void do_quit(void)
{
    uint64_t t0 = now_us();
    int code;

    if (g_registered) {
        if (!g_aborted) {
            stop_generation(0);
        }
        proxy_unregister(g_px);
    }
    code = exit_code();
    reply("ok quit ms=%" PRIu64 " invalid=%" PRIu64 " leaks=%" PRIu64 " misuse=%" PRIu64 " code=%d",
          (uint64_t) ((now_us() - t0) / 1000), g_invalid, g_leaks, g_misuse, code);
    if (g_records_fd >= 0) {
        close(g_records_fd);
    }
    exit(code);
}

static void handle_line(char *line)
{
    char *tok[512];
    int ntok = tokenize(line, tok, 512);

    if (ntok == 0) {
        return;
    }
    if (!strcmp(tok[0], "init")) {
        cmd_init(tok, ntok);
    }
    else if (!strcmp(tok[0], "collect")) {
        cmd_collect(tok, ntok);
    }
    else if (!strcmp(tok[0], "drain")) {
        cmd_drain(tok, ntok, 0);
    }
    else if (!strcmp(tok[0], "drain-all")) {
        cmd_drain(tok, ntok, 1);
    }
    else if (!strcmp(tok[0], "pause")) {
        cmd_pause_resume(tok, ntok, 1);
    }
    else if (!strcmp(tok[0], "resume")) {
        cmd_pause_resume(tok, ntok, 0);
    }
    else if (!strcmp(tok[0], "exit")) {
        cmd_exit(tok, ntok);
    }
    else if (!strcmp(tok[0], "reload")) {
        do_reload(0);
    }
    else if (!strcmp(tok[0], "stats")) {
        cmd_stats();
    }
    else if (!strcmp(tok[0], "ping")) {
        reply("ok ping");
    }
    else if (!strcmp(tok[0], "quit")) {
        do_quit();
    }
    else {
        reply("err %s unknown command", tok[0]);
    }
}

/* ------------------------------------------------------------------------- */
/* main                                                                      */
/* ------------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: host <plugin.so> [-records <path>] [-log <path>] [-log-level <level>] "
            "[-hot-reload] [-pause-last-instance]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    char err[512];
    char *buf;
    size_t cap = 65536;
    size_t len = 0;
    int i;

    if (argc < 2) {
        usage();
    }
    g_so_path = argv[1];
    for (i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-records") && i + 1 < argc) {
            g_records_fd = open(argv[++i], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            if (g_records_fd < 0) {
                fprintf(stderr, "open %s: %s\n", argv[i], strerror(errno));
                return 2;
            }
        }
        else if (!strcmp(argv[i], "-log") && i + 1 < argc) {
            g_log_fd = open(argv[++i], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            if (g_log_fd < 0) {
                fprintf(stderr, "open %s: %s\n", argv[i], strerror(errno));
                return 2;
            }
        }
        else if (!strcmp(argv[i], "-log-level") && i + 1 < argc) {
            g_default_log_level = parse_level(argv[++i]);
            if (g_default_log_level < 0) {
                fprintf(stderr, "bad log level %s\n", argv[i]);
                return 2;
            }
        }
        else if (!strcmp(argv[i], "-hot-reload")) {
            g_enable_hot_reload = 1;
        }
        else if (!strcmp(argv[i], "-pause-last-instance")) {
            g_pause_last_instance = 1;
        }
        else {
            usage();
        }
    }

    g_main_tid = host_gettid();
    if (pipe2(g_sigpipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        perror("pipe2");
        return 2;
    }
    /* Fluent Bit installs its handlers before any plugin is loaded */
    host_signal_init();

    g_px = proxy_load(0, err, sizeof(err));
    if (!g_px) {
        reply("err register %s", err);
    }
    else {
        g_registered = 1;
        g_px->gen = g_gen;
        reply("ok register name=%s type=%d proxy=%d flags=%d event_type=%d collect=%s cleanup=%s "
              "main_tid=%d pid=%d", g_px->def->name, g_px->def->type, g_px->def->proxy,
              g_px->def->flags, g_px->def->event_type, collect_kind(g_px), cleanup_kind(g_px),
              (int) g_main_tid, (int) getpid());
    }

    buf = xcalloc(1, cap);
    for (;;) {
        struct pollfd pfd[2];
        int r;

        pfd[0].fd = 0;
        pfd[0].events = POLLIN;
        pfd[0].revents = 0;
        pfd[1].fd = g_sigpipe[0];
        pfd[1].events = POLLIN;
        pfd[1].revents = 0;
        r = poll(pfd, 2, -1);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            perror("poll");
            do_quit();
        }
        if (pfd[1].revents & POLLIN) {
            char c[16];
            ssize_t n = read(g_sigpipe[0], c, sizeof(c));
            ssize_t k;
            for (k = 0; k < n; k++) {
                if (c[k] == 'q') {
                    do_quit();
                }
            }
            for (k = 0; k < n; k++) {
                if (c[k] == 'h') {
                    do_reload(1);
                }
            }
        }
        if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n;
            char *nl;
            if (len + 4096 > cap) {
                cap *= 2;
                buf = realloc(buf, cap);
                if (!buf) {
                    errlog("fatal: out of memory");
                    abort();
                }
            }
            n = read(0, buf + len, cap - len - 1);
            if (n < 0) {
                if (errno == EINTR || errno == EAGAIN) {
                    continue;
                }
                do_quit();
            }
            if (n == 0) {
                /* EOF: behave like SIGTERM */
                do_quit();
            }
            len += (size_t) n;
            buf[len] = '\0';
            while ((nl = memchr(buf, '\n', len)) != NULL) {
                size_t linelen = (size_t) (nl - buf);
                *nl = '\0';
                handle_line(buf);
                memmove(buf, nl + 1, len - linelen - 1);
                len -= linelen + 1;
                buf[len] = '\0';
            }
        }
    }
    return 0;
}
