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
