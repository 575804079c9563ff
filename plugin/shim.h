/*
 * What github.com/fluent/fluent-bit-go's input package lacks, and only that.
 * It registers the plugin and reads properties during Init (plugin/exports.go)
 * but its flb_input.h declares the input proxy context with the output
 * layout ({remote_context}), where Fluent Bit's input context starts with
 * coll_fd (include/fluent-bit/flb_plugin_proxy.h), and it has no wrapper for
 * Fluent Bit's logger or for listing the properties a user set. So the
 * input context, the logger and the property listing stay here, with the
 * layouts of Fluent Bit >= 4.1 (src/proxy/go/go.h, flb_plugin_proxy.h,
 * include/fluent-bit/flb_api.h).
 */
#ifndef TELEPORT_SHIM_H
#define TELEPORT_SHIM_H

#include <stddef.h>

#define TP_LOG_ERROR 1
#define TP_LOG_WARN  2
#define TP_LOG_INFO  3
#define TP_LOG_DEBUG 4
#define TP_LOG_TRACE 5

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

void *tp_api(void *plugin);
void *tp_instance(void *plugin);
void tp_set_context(void *plugin, void *remote_context);
int tp_log_check(void *api, void *ins, int level);
void tp_log(void *api, int level, const char *msg);
const char *tp_instance_name(void *ins);
int tp_list_properties(void *api, void *ins, const char *known_key, char *out, int out_len);

#endif
