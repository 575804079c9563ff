/*
 * The few Fluent Bit structures a Go input plugin touches, declared with the
 * layouts of Fluent Bit >= 4.1 (src/proxy/go/go.h,
 * include/fluent-bit/flb_plugin_proxy.h, include/fluent-bit/flb_api.h).
 * fluent-bit-go's input header declares the proxy context with the output
 * layout ({remote_context}), but for inputs coll_fd comes first, so we keep
 * our own.
 */
#ifndef TELEPORT_SHIM_H
#define TELEPORT_SHIM_H

#include <stddef.h>

#define TP_FLB_PROXY_INPUT_PLUGIN 1
#define TP_FLB_PROXY_GOLANG       11

#define TP_LOG_ERROR 1
#define TP_LOG_WARN  2
#define TP_LOG_INFO  3
#define TP_LOG_DEBUG 4
#define TP_LOG_TRACE 5

/* Only the fields every supported version has; event_type (5.0+) and
 * config_map (5.1.1+) are left to Fluent Bit's calloc. */
struct tp_proxy_def {
    int type;
    int proxy;
    int flags;
    char *name;
    char *description;
};

struct tp_api {
    const char *(*output_get_property)(const char *, void *);
    const char *(*input_get_property)(const char *, void *);
    void *(*output_get_cmt_instance)(void *);
    void *(*input_get_cmt_instance)(void *);
    void (*log_print)(int, const char *, int, const char *, ...);
    int (*input_log_check)(void *, int);
    int (*output_log_check)(void *, int);
};

struct tp_input_proxy_context {
    int coll_fd;
    void *remote_context;
    void *proxy;
};

struct tp_input_plugin {
    char *name;
    struct tp_api *api;
    void *i_ins;
    struct tp_input_proxy_context *context;
};

void tp_register(void *def);
void *tp_api(void *plugin);
void *tp_instance(void *plugin);
void tp_set_context(void *plugin, void *remote_context);
const char *tp_get_property(void *plugin, const char *key);
int tp_log_check(void *api, void *ins, int level);
void tp_log(void *api, int level, const char *msg);
const char *tp_instance_name(void *ins);
int tp_list_properties(void *api, void *ins, const char *known_key, char *out, int out_len);
void *tp_input_counter(void *ins, const char *name);
int tp_counter_value(void *counter, const char *label, double *out);

#endif
