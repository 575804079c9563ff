/*
 * leak.c - a single-instance test input plugin that uses the context-less
 * FLBPluginInputCallback and exports NO cleanup callback, so the host must
 * free() the buffers itself.  Its `mode` property selects what a collect
 * returns:
 *   leak           valid data with return -1: Fluent Bit drops it, never frees it
 *   free           valid data with FLB_OK: the host frees it with free()
 *   empty_nonnull  malloc'd pointer with size 0: never freed either
 *   nothing        NULL, size 0
 *   null_data      NULL with size 10
 */
#include "plugin_abi.h"

static char g_mode[64] = "free";

int FLBPluginRegister(void *d)
{
    struct flb_plugin_proxy_def *def = d;
    def->type = FLB_PROXY_INPUT_PLUGIN;
    def->proxy = FLB_PROXY_GOLANG;
    def->name = strdup("teleport");
    def->description = strdup("leak test plugin");
    return 0;
}

int FLBPluginInit(void *plugin)
{
    struct in_plugin *p = plugin;
    const char *m = p->api->input_get_property("mode", p->i_ins);
    snprintf(g_mode, sizeof(g_mode), "%s", m ? m : "free");
    return FLB_OK;
}

static void event(struct mpw *w)
{
    mpw_array(w, 2);
    mpw_eventtime(w, 1700000000, 1);
    mpw_map(w, 1);
    mpw_str(w, "mode");
    mpw_str(w, g_mode);
}

int FLBPluginInputCallback(void **data, size_t *size)
{
    struct mpw w = { 0 };

    if (!strcmp(g_mode, "leak")) {
        event(&w);
        *data = w.b;
        *size = w.len;
        return -1;
    }
    if (!strcmp(g_mode, "empty_nonnull")) {
        *data = malloc(1);
        *size = 0;
        return FLB_OK;
    }
    if (!strcmp(g_mode, "nothing")) {
        *data = NULL;
        *size = 0;
        return FLB_OK;
    }
    if (!strcmp(g_mode, "null_data")) {
        *data = NULL;
        *size = 10;
        return FLB_OK;
    }
    event(&w);
    *data = w.b;
    *size = w.len;
    return FLB_OK;
}
