/*
 * good.c - a well-behaved multi-instance test input plugin for the host.
 *
 * - stores a per-instance handle in context->remote_context (offset 8);
 * - emits `records` events per collect: [[EventTime, {"inst": id}], body]
 *   ("format legacy": [EventTime, body]) where body holds the instance's
 *   `message` property, an integer counter and a few typed values;
 * - frees buffers in FLBPluginInputCleanupCallbackCtx;
 * - returns no data while paused; finds the instance of the context-less
 *   Pause/Resume/PreExit/Exit callbacks by OS thread id;
 * - logs every callback ("cb=<name> inst=<id> tid=<tid> ...") through
 *   api->log_print; lines from before the first FLBPluginInit (no api yet)
 *   are queued and flushed at the first init.
 *
 * Properties: message, records (1), format (v2|legacy), counter_start (0),
 * ctx_at_offset0 (off: on = the fluent-bit-go layout bug), trace (off: log
 * every collect/cleanup), init_ret (1), collect_sleep_ms (0),
 * probe (comma-separated keys: logs "probe <key>=<value|NULL>" at error
 * level during init), misuse (on: the first collect passes its own handle
 * where the API expects the instance), crash (on: NULL dereference in
 * collect).
 */
#include "plugin_abi.h"

#include <pthread.h>
#include <time.h>

struct inst {
    int id;
    int tid;
    void *ins;
    char name[64];
    char message[512];
    uint64_t counter;
    int records;
    int legacy;
    int paused;
    int exited;
    int trace;
    int misuse;
    int crash;
    long sleep_ms;
    uint64_t frees;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct inst *insts[256];
static int ninst;
static struct flb_api *g_api;
static char *pending[64];
static int npending;

static void plog(int level, void *ins, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void plog(int level, void *ins, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    struct flb_api *api;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);

    pthread_mutex_lock(&mu);
    api = g_api;
    if (!api) {
        if (npending < 64) {
            pending[npending++] = strdup(buf);
        }
        pthread_mutex_unlock(&mu);
        return;
    }
    pthread_mutex_unlock(&mu);
    if (ins && !api->input_log_check(ins, level)) {
        return;
    }
    api->log_print(level, NULL, 0, "%s", buf);
}

static struct inst *by_thread(void)
{
    int tid = tp_gettid();
    int i;
    struct inst *found = NULL;

    pthread_mutex_lock(&mu);
    for (i = 0; i < ninst; i++) {
        if (insts[i]->tid == tid && !insts[i]->exited) {
            found = insts[i];
            break;
        }
    }
    pthread_mutex_unlock(&mu);
    return found;
}

int FLBPluginPreRegister(int hot_reloading)
{
    plog(3, NULL, "cb=pre_register inst=- tid=%d arg=%d", tp_gettid(), hot_reloading);
    return 0;
}

int FLBPluginRegister(void *d)
{
    struct flb_plugin_proxy_def *def = d;
    def->type = FLB_PROXY_INPUT_PLUGIN;
    def->proxy = FLB_PROXY_GOLANG;
    def->flags = 0;
    def->name = strdup("teleport");
    def->description = strdup("good test plugin");
    def->event_type = 0;
    plog(3, NULL, "cb=register inst=- tid=%d", tp_gettid());
    return 0;
}

static const char *prop(struct in_plugin *p, const char *key, const char *def)
{
    const char *v = p->api->input_get_property(key, p->i_ins);
    return v ? v : def;
}

int FLBPluginInit(void *plugin)
{
    struct in_plugin *p = plugin;
    struct inst *in = calloc(1, sizeof(*in));
    const char *(*input_name)(void *);
    const char *v;
    int ret;
    int i;
    char *flush[64];
    int nflush;

    pthread_mutex_lock(&mu);
    g_api = p->api;
    nflush = npending;
    memcpy(flush, pending, sizeof(pending));
    npending = 0;
    pthread_mutex_unlock(&mu);
    for (i = 0; i < nflush; i++) {
        p->api->log_print(3, NULL, 0, "%s", flush[i]);
        free(flush[i]);
    }

    in->tid = tp_gettid();
    in->ins = p->i_ins;
    snprintf(in->message, sizeof(in->message), "%s", prop(p, "message", "hello"));
    in->records = atoi(prop(p, "records", "1"));
    in->legacy = strcmp(prop(p, "format", "v2"), "legacy") == 0;
    in->counter = strtoull(prop(p, "counter_start", "0"), NULL, 10);
    in->trace = strcmp(prop(p, "trace", "off"), "on") == 0;
    in->sleep_ms = atol(prop(p, "collect_sleep_ms", "0"));
    in->misuse = strcmp(prop(p, "misuse", "off"), "on") == 0;
    in->crash = strcmp(prop(p, "crash", "off"), "on") == 0;
    ret = atoi(prop(p, "init_ret", "1"));

    input_name = (const char *(*)(void *)) dlsym(RTLD_DEFAULT, "flb_input_name");
    v = input_name ? input_name(p->i_ins) : NULL;
    snprintf(in->name, sizeof(in->name), "%s", v ? v : "?");

    v = p->api->input_get_property("probe", p->i_ins);
    if (v) {
        char keys[1024];
        char *save = NULL;
        char *k;
        snprintf(keys, sizeof(keys), "%s", v);
        for (k = strtok_r(keys, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
            const char *pv = p->api->input_get_property(k, p->i_ins);
            plog(1, NULL, "probe tid=%d %s=%s", tp_gettid(), k, pv ? pv : "NULL");
        }
        plog(1, NULL, "probe tid=%d name=%s log_check_info=%d log_check_error=%d", tp_gettid(),
             in->name, p->api->input_log_check(p->i_ins, 3), p->api->input_log_check(p->i_ins, 1));
    }

    pthread_mutex_lock(&mu);
    in->id = ninst;
    insts[ninst++] = in;
    pthread_mutex_unlock(&mu);

    plog(3, in->ins, "cb=init inst=%d tid=%d name=%s message=\"%s\" coll_fd=%d ctx_before=%p plugin=%p",
         in->id, in->tid, in->name, in->message, p->context->coll_fd,
         p->context->remote_context, (void *) p);

    if (strcmp(prop(p, "ctx_at_offset0", "off"), "on") == 0) {
        /* what a copy of fluent-bit-go's output SetContext would do */
        *(void **) p->context = in;
    }
    else {
        p->context->remote_context = in;
    }
    return ret;
}

int FLBPluginInputPreRun(int enable_hot_reload)
{
    struct inst *in = by_thread();
    plog(3, NULL, "cb=pre_run inst=%d tid=%d arg=%d", in ? in->id : -1, tp_gettid(), enable_hot_reload);
    return 0;
}

static void encode(struct inst *in, struct mpw *w)
{
    int r;
    for (r = 0; r < in->records; r++) {
        uint64_t c = in->counter++;
        mpw_array(w, 2);
        if (!in->legacy) {
            mpw_array(w, 2);
        }
        mpw_eventtime(w, (uint32_t) (1700000000ULL + c), (uint32_t) (123456789ULL + c % 1000));
        if (!in->legacy) {
            mpw_map(w, 1);
            mpw_str(w, "inst");
            mpw_uint(w, (uint64_t) in->id);
        }
        mpw_map(w, 9);
        mpw_str(w, "message");
        mpw_str(w, in->message);
        mpw_str(w, "counter");
        mpw_uint(w, c);
        mpw_str(w, "instance");
        mpw_str(w, in->name);
        mpw_str(w, "neg");
        mpw_int(w, -5);
        mpw_str(w, "big");
        mpw_int(w, INT64_MAX);
        mpw_str(w, "ubig");
        mpw_uint(w, UINT64_MAX);
        mpw_str(w, "ratio");
        mpw_f64(w, 0.25);
        mpw_str(w, "ok");
        mpw_byte(w, 0xc3);
        mpw_str(w, "nested");
        mpw_map(w, 2);
        mpw_str(w, "list");
        mpw_array(w, 3);
        mpw_uint(w, 1);
        mpw_str(w, "two");
        mpw_byte(w, 0xc0);
        mpw_str(w, "n");
        mpw_uint(w, 70000);
    }
}

int FLBPluginInputCallbackCtx(void *ctx, void **data, size_t *size)
{
    struct inst *in = ctx;
    struct mpw w = { 0 };

    if (!in) {
        plog(1, NULL, "cb=collect inst=? tid=%d error=NULL-context", tp_gettid());
        *size = 0;
        return FLB_OK;
    }
    if (in->crash) {
        volatile int *null = NULL;
        *null = 1;
    }
    if (in->misuse) {
        in->misuse = 0;
        g_api->input_get_property("message", in);
    }
    if (in->tid != tp_gettid()) {
        plog(1, NULL, "cb=collect inst=%d tid=%d error=wrong-thread init_tid=%d", in->id, tp_gettid(), in->tid);
    }
    if (in->sleep_ms > 0) {
        struct timespec ts = { in->sleep_ms / 1000, (in->sleep_ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
    }
    if (in->paused) {
        if (in->trace) {
            plog(3, in->ins, "cb=collect inst=%d tid=%d paused=1", in->id, tp_gettid());
        }
        *data = NULL;
        *size = 0;
        return FLB_OK;
    }
    encode(in, &w);
    *data = w.b;
    *size = w.len;
    if (in->trace) {
        plog(3, in->ins, "cb=collect inst=%d tid=%d bytes=%zu", in->id, tp_gettid(), w.len);
    }
    return FLB_OK;
}

int FLBPluginInputCleanupCallbackCtx(void *ctx, void *data)
{
    struct inst *in = ctx;
    free(data);
    if (in) {
        in->frees++;
        if (in->trace) {
            plog(3, in->ins, "cb=cleanup inst=%d tid=%d frees=%llu", in->id, tp_gettid(),
                 (unsigned long long) in->frees);
        }
    }
    return 0;
}

void FLBPluginInputPause(void)
{
    struct inst *in = by_thread();
    if (in) {
        in->paused = 1;
    }
    plog(3, NULL, "cb=pause inst=%d tid=%d", in ? in->id : -1, tp_gettid());
}

void FLBPluginInputResume(void)
{
    struct inst *in = by_thread();
    if (in) {
        in->paused = 0;
    }
    plog(3, NULL, "cb=resume inst=%d tid=%d", in ? in->id : -1, tp_gettid());
}

void FLBPluginInputPreExit(int shutdown_by_hot_reloading)
{
    struct inst *in = by_thread();
    plog(3, NULL, "cb=pre_exit inst=%d tid=%d arg=%d", in ? in->id : -1, tp_gettid(),
         shutdown_by_hot_reloading);
}

int FLBPluginExit(void)
{
    struct inst *in = by_thread();
    if (in) {
        in->exited = 1;
    }
    plog(3, NULL, "cb=exit inst=%d tid=%d frees=%llu", in ? in->id : -1, tp_gettid(),
         in ? (unsigned long long) in->frees : 0ULL);
    return FLB_OK;
}

void FLBPluginUnregister(void *d)
{
    struct flb_plugin_proxy_def *def = d;
    plog(3, NULL, "cb=unregister inst=- tid=%d name=%s", tp_gettid(), def->name);
    free(def->name);
    free(def->description);
    /* the api of this registration goes away with it */
    pthread_mutex_lock(&mu);
    g_api = NULL;
    pthread_mutex_unlock(&mu);
}
