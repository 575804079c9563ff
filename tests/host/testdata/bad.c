/*
 * bad.c - a test input plugin that emits one buffer shaped by its `mode`
 * property on every collect.  Some modes are valid (the shapes Fluent Bit
 * accepts), most are not.  The host must reject exactly the invalid ones.
 *
 * Registration can be broken on purpose with the environment variable
 * BAD_REGISTER = pre_fail | fail | wrong_proxy | output | no_name.
 */
#include "plugin_abi.h"

struct inst {
    char mode[64];
};

int FLBPluginPreRegister(int hot_reloading)
{
    const char *r = getenv("BAD_REGISTER");
    (void) hot_reloading;
    if (r && strcmp(r, "pre_fail") == 0) {
        return -1;
    }
    return 0;
}

int FLBPluginRegister(void *d)
{
    struct flb_plugin_proxy_def *def = d;
    const char *r = getenv("BAD_REGISTER");

    def->type = FLB_PROXY_INPUT_PLUGIN;
    def->proxy = FLB_PROXY_GOLANG;
    def->name = strdup("teleport");
    def->description = strdup("bad test plugin");
    if (!r) {
        return 0;
    }
    if (strcmp(r, "fail") == 0) {
        return -1;
    }
    if (strcmp(r, "wrong_proxy") == 0) {
        def->proxy = 0;
    }
    if (strcmp(r, "output") == 0) {
        def->type = 2;
    }
    if (strcmp(r, "no_name") == 0) {
        free(def->name);
        def->name = NULL;
    }
    return 0;
}

int FLBPluginInit(void *plugin)
{
    struct in_plugin *p = plugin;
    struct inst *in = calloc(1, sizeof(*in));
    const char *m = p->api->input_get_property("mode", p->i_ins);
    snprintf(in->mode, sizeof(in->mode), "%s", m ? m : "v2");
    p->context->remote_context = in;
    return FLB_OK;
}

static void ts(struct mpw *w)
{
    mpw_eventtime(w, 1700000000, 5);
}

static void ok_event(struct mpw *w)
{
    mpw_array(w, 2);
    mpw_array(w, 2);
    ts(w);
    mpw_map(w, 0);
    mpw_map(w, 1);
    mpw_str(w, "k");
    mpw_str(w, "v");
}

static void nest(struct mpw *w, int depth)
{
    /* depth nested non-empty arrays around a 0 */
    int i;
    for (i = 0; i < depth; i++) {
        mpw_array(w, 1);
    }
    mpw_uint(w, 0);
}

static int build(const char *mode, struct mpw *w)
{
    if (!strcmp(mode, "v2")) {
        ok_event(w);
    }
    else if (!strcmp(mode, "legacy")) {
        mpw_array(w, 2);
        ts(w);
        mpw_map(w, 1);
        mpw_str(w, "k");
        mpw_str(w, "v");
    }
    else if (!strcmp(mode, "int_ts")) {
        mpw_array(w, 2);
        mpw_uint(w, 1700000000);
        mpw_map(w, 0);
    }
    else if (!strcmp(mode, "zero_ts")) {
        mpw_array(w, 2);
        mpw_uint(w, 0);
        mpw_map(w, 0);
    }
    else if (!strcmp(mode, "signed_pos_ts")) {
        /* int64 encoding of a positive value: msgpack-c types it POSITIVE_INTEGER */
        mpw_array(w, 2);
        mpw_byte(w, 0xd3);
        mpw_be(w, 1700000000ULL, 8);
        mpw_map(w, 0);
    }
    else if (!strcmp(mode, "float_ts")) {
        mpw_array(w, 2);
        mpw_f64(w, 1700000000.5);
        mpw_map(w, 0);
    }
    else if (!strcmp(mode, "mixed")) {
        /* the four shapes measured in one buffer */
        ok_event(w);
        mpw_array(w, 2);
        ts(w);
        mpw_map(w, 0);
        mpw_array(w, 2);
        mpw_uint(w, 1700000000);
        mpw_map(w, 0);
        mpw_array(w, 2);
        mpw_f64(w, 1700000000.25);
        mpw_map(w, 0);
    }
    else if (!strcmp(mode, "group")) {
        /* group start, one record, group end: valid, 1 record */
        mpw_array(w, 2);
        mpw_array(w, 2);
        mpw_eventtime(w, 0xffffffffU, 0);
        mpw_map(w, 0);
        mpw_map(w, 0);
        ok_event(w);
        mpw_array(w, 2);
        mpw_array(w, 2);
        mpw_eventtime(w, 0xfffffffeU, 0);
        mpw_map(w, 0);
        mpw_map(w, 0);
    }
    else if (!strcmp(mode, "deep64")) {
        /* 64 open containers: root array + body map + 62 arrays (the limit) */
        mpw_array(w, 2);
        ts(w);
        mpw_map(w, 1);
        mpw_str(w, "d");
        nest(w, 62);
    }
    else if (!strcmp(mode, "deep65")) {
        /* one level more than msgpack-c's MSGPACK_EMBED_STACK_SIZE=64 */
        mpw_array(w, 2);
        ts(w);
        mpw_map(w, 1);
        mpw_str(w, "d");
        nest(w, 63);
    }
    else if (!strcmp(mode, "three_elem")) {
        mpw_array(w, 3);
        ts(w);
        mpw_map(w, 0);
        mpw_map(w, 0);
    }
    else if (!strcmp(mode, "non_map_body")) {
        mpw_array(w, 2);
        ts(w);
        mpw_str(w, "not a map");
    }
    else if (!strcmp(mode, "truncated")) {
        ok_event(w);
        w->len -= 1;
    }
    else if (!strcmp(mode, "truncated_second")) {
        ok_event(w);
        ok_event(w);
        w->len -= 3;
    }
    else if (!strcmp(mode, "bare_map")) {
        mpw_map(w, 1);
        mpw_str(w, "k");
        mpw_str(w, "v");
    }
    else if (!strcmp(mode, "neg_int_ts")) {
        mpw_array(w, 2);
        mpw_int(w, -1);
        mpw_map(w, 0);
    }
    else if (!strcmp(mode, "float32_ts")) {
        mpw_array(w, 2);
        mpw_f32(w, 1700000000.0f);
        mpw_map(w, 0);
    }
    else if (!strcmp(mode, "str_ts")) {
        mpw_array(w, 2);
        mpw_str(w, "2026-01-01T00:00:00Z");
        mpw_map(w, 0);
    }
    else if (!strcmp(mode, "ext1_ts")) {
        unsigned char t[8] = { 0 };
        mpw_array(w, 2);
        mpw_ext(w, 1, t, 8);
        mpw_map(w, 0);
    }
    else if (!strcmp(mode, "ext_size4_ts")) {
        unsigned char t[4] = { 0 };
        mpw_array(w, 2);
        mpw_ext(w, 0, t, 4);
        mpw_map(w, 0);
    }
    else if (!strcmp(mode, "nsec_overflow")) {
        mpw_array(w, 2);
        mpw_eventtime(w, 1700000000, 1000000000U);
        mpw_map(w, 0);
    }
    else if (!strcmp(mode, "neg_float_ts")) {
        mpw_array(w, 2);
        mpw_f64(w, -5.0);
        mpw_map(w, 0);
    }
    else if (!strcmp(mode, "header3")) {
        mpw_array(w, 2);
        mpw_array(w, 3);
        ts(w);
        mpw_map(w, 0);
        mpw_uint(w, 1);
        mpw_map(w, 0);
    }
    else if (!strcmp(mode, "meta_not_map")) {
        mpw_array(w, 2);
        mpw_array(w, 2);
        ts(w);
        mpw_array(w, 0);
        mpw_map(w, 0);
    }
    else if (!strcmp(mode, "garbage")) {
        mpw_byte(w, 0xc1);
        mpw_raw(w, "garbage", 7);
    }
    else if (!strcmp(mode, "valid_then_invalid")) {
        ok_event(w);
        mpw_array(w, 3);
        ts(w);
        mpw_map(w, 0);
        mpw_map(w, 0);
        ok_event(w);
    }
    else if (!strcmp(mode, "trailing_byte")) {
        ok_event(w);
        mpw_byte(w, 0x01);
    }
    else if (!strcmp(mode, "bad_group_marker")) {
        mpw_array(w, 2);
        mpw_eventtime(w, 0xffffffffU, 7);
        mpw_map(w, 0);
    }
    else {
        return -1;
    }
    return 0;
}

int FLBPluginInputCallbackCtx(void *ctx, void **data, size_t *size)
{
    struct inst *in = ctx;
    struct mpw w = { 0 };

    if (!in || build(in->mode, &w) != 0) {
        free(w.b);
        *size = 0;
        return FLB_ERROR;
    }
    *data = w.b;
    *size = w.len;
    return FLB_OK;
}

int FLBPluginInputCleanupCallbackCtx(void *ctx, void *data)
{
    (void) ctx;
    free(data);
    return 0;
}

int FLBPluginExit(void)
{
    return FLB_OK;
}
