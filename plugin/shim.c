#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

void *tp_api(void *plugin) { return ((struct tp_input_plugin *) plugin)->api; }

void *tp_instance(void *plugin) { return ((struct tp_input_plugin *) plugin)->i_ins; }

void tp_set_context(void *plugin, void *remote_context)
{
    ((struct tp_input_plugin *) plugin)->context->remote_context = remote_context;
}

int tp_log_check(void *api, void *ins, int level)
{
    return ((struct tp_api *) api)->input_log_check(ins, level);
}

void tp_log(void *api, int level, const char *msg)
{
    ((struct tp_api *) api)->log_print(level, NULL, 0, "%s", msg);
}

/* The Fluent Bit binary exports its symbols (ENABLE_EXPORTS), so the
 * instance's display name (alias, or name such as teleport.0) comes from its
 * own flb_input_name(). NULL where the host does not export it. */
const char *tp_instance_name(void *ins)
{
    const char *(*fn)(void *) = (const char *(*)(void *)) dlsym(RTLD_DEFAULT, "flb_input_name");
    if (fn == NULL || ins == NULL) {
        return NULL;
    }
    return fn(ins);
}

/*
 * Listing the keys the user set, to report unknown ones.
 *
 * Fluent Bit's API only looks keys up, and the offset of the instance's
 * property list differs between versions and build options. So we find it:
 * the list is an mk_list of struct flb_kv {key, val, _head}, and the value
 * pointer that input_get_property() returns for a key we know is set must be
 * the val of one of its entries. A candidate list must close back on its head
 * and contain that exact pointer; nothing else matches by accident. Every read
 * of a candidate goes through write(2) into a pipe, which fails with EFAULT on
 * an invalid address instead of crashing.
 */
struct tp_mk_list { struct tp_mk_list *prev, *next; };
struct tp_kv { char *key; char *val; struct tp_mk_list _head; };

static int safe_read(int fds[2], const void *addr, void *dst, size_t n)
{
    if (write(fds[1], addr, n) != (ssize_t) n) {
        return -1;
    }
    return read(fds[0], dst, n) == (ssize_t) n ? 0 : -1;
}

#define TP_SCAN_BYTES 4096
#define TP_MAX_PROPS 256

static int list_has_val(int fds[2], uintptr_t head, const char *val)
{
    uintptr_t node;
    int found = 0;
    if (safe_read(fds, (void *) (head + sizeof(void *)), &node, sizeof node) != 0) {
        return 0;
    }
    for (int i = 0; i < TP_MAX_PROPS; i++) {
        if (node == head) {
            return found;
        }
        if (node == 0) {
            return 0;
        }
        uintptr_t kv = node - offsetof(struct tp_kv, _head);
        char *v;
        if (safe_read(fds, (void *) (kv + offsetof(struct tp_kv, val)), &v, sizeof v) != 0) {
            return 0;
        }
        if (v == val) {
            found = 1;
        }
        if (safe_read(fds, (void *) (node + sizeof(void *)), &node, sizeof node) != 0) {
            return 0;
        }
    }
    return 0;
}

int tp_list_properties(void *api, void *ins, const char *known_key, char *out, int out_len)
{
    struct tp_api *a = api;
    const char *val = a->input_get_property(known_key, ins);
    int fds[2];
    int n = -1;
    if (val == NULL || ins == NULL || pipe(fds) != 0) {
        return -1;
    }
    for (size_t off = sizeof(void *); off < TP_SCAN_BYTES; off += sizeof(void *)) {
        uintptr_t head = (uintptr_t) ins + off;
        if (!list_has_val(fds, head, val)) {
            continue;
        }
        /* Found: the list is valid, walk it and copy the keys. */
        int used = 0;
        n = 0;
        struct tp_mk_list *node = ((struct tp_mk_list *) head)->next;
        while ((uintptr_t) node != head) {
            struct tp_kv *kv = (struct tp_kv *) ((char *) node - offsetof(struct tp_kv, _head));
            size_t len = kv->key ? strlen(kv->key) : 0;
            if (len > 0 && used + (int) len + 1 <= out_len) {
                memcpy(out + used, kv->key, len + 1);
                used += len + 1;
                n++;
            }
            node = node->next;
        }
        break;
    }
    close(fds[0]);
    close(fds[1]);
    return n;
}

/*
 * Reading the instance's own counters, to learn when a batch is in a chunk.
 *
 * Fluent Bit (built with FLB_HAVE_METRICS) keeps them in the instance's cmt
 * context (src/flb_input.c flb_input_get_cmt_instance, flb_input_instance_init)
 * as struct cmt_counter entries of the cmt's counters list
 * (lib/cmetrics/include/cmetrics/cmetrics.h, cmt_counter.h, cmt_opts.h), each
 * labelled with the instance's name. The layouts below are those of Fluent
 * Bit 5.1.1; every read of them goes through safe_read, so a different layout
 * finds nothing instead of crashing, and the plugin falls back to its time
 * rule. The values are read with Fluent Bit's own cmt_counter_get_val(): the
 * labelled metric exists from Init (flb_input.c sets it to 0), so the lookup
 * does not race with an insert, and cmetrics loads the value atomically.
 */
struct tp_cmt_opts { char *ns, *subsystem, *name, *description, *fqname; int resource_index; };
struct tp_cmt_counter { struct tp_cmt_opts opts; void *map; struct tp_mk_list _head; };
struct tp_cmt {
    int log_level;
    void *log_cb;
    void *internal_metadata, *external_metadata, *static_labels;
    struct tp_mk_list counters;
};

#define TP_MAX_COUNTERS 512

static int safe_streq(int fds[2], const char *p, const char *want)
{
    char buf[64];
    size_t n = strlen(want) + 1;
    if (p == NULL || n > sizeof buf || safe_read(fds, p, buf, n) != 0) {
        return 0;
    }
    return memcmp(buf, want, n) == 0;
}

void *tp_input_counter(void *ins, const char *name)
{
    void *(*get_cmt)(void *) = (void *(*)(void *)) dlsym(RTLD_DEFAULT, "flb_input_get_cmt_instance");
    void *found = NULL;
    uintptr_t head, node;
    int fds[2];

    if (get_cmt == NULL || ins == NULL || dlsym(RTLD_DEFAULT, "cmt_counter_get_val") == NULL) {
        return NULL;
    }
    struct tp_cmt *cmt = get_cmt(ins);
    if (cmt == NULL || pipe(fds) != 0) {
        return NULL;
    }
    head = (uintptr_t) &cmt->counters;
    if (safe_read(fds, (void *) (head + sizeof(void *)), &node, sizeof node) != 0) {
        node = head;
    }
    for (int i = 0; i < TP_MAX_COUNTERS && node != head && node != 0; i++) {
        struct tp_cmt_counter c;
        uintptr_t at = node - offsetof(struct tp_cmt_counter, _head);
        if (safe_read(fds, (void *) at, &c, sizeof c) != 0) {
            break;
        }
        if (safe_streq(fds, c.opts.ns, "fluentbit") && safe_streq(fds, c.opts.subsystem, "input") &&
            safe_streq(fds, c.opts.name, name)) {
            found = (void *) at;
            break;
        }
        node = (uintptr_t) c._head.next;
    }
    close(fds[0]);
    close(fds[1]);
    return found;
}

int tp_counter_value(void *counter, const char *label, double *out)
{
    int (*get)(void *, int, char **, double *) =
        (int (*)(void *, int, char **, double *)) dlsym(RTLD_DEFAULT, "cmt_counter_get_val");
    char *labels[1] = { (char *) label };
    if (get == NULL || counter == NULL || label == NULL) {
        return -1;
    }
    return get(counter, 1, labels, out);
}
