/* diagnose: runs the PromQL query its binding gives (parameter `query`, e.g. templated from the
 * alert's labels), counts the series it returns, and annotates the alert with the finding. It acts
 * on nothing.
 *
 * Build: clang --target=wasm32-wasi -O2 -mexec-model=reactor -I ../../include \
 *          -o diagnose.wasm diagnose.c
 * No stdio: printf would link WASI file functions the sandbox does not give; vigil_log is the log. */
#include <string.h>
#include <stdio.h> /* snprintf only: formats into memory, imports nothing */

#include "vigil_runbook.h"

static char input[16384];
static char reply[65536];
static char buf[8192];

static void say(int level, const char *msg) { vigil_log(level, msg, (int32_t)strlen(msg)); }

/* Copies the JSON-escaped contents of the string field `key` (first occurrence) into out; returns
 * its length, or -1 when there is none. Escapes are kept, so the text can go back into JSON as is. */
static int string_field(const char *json, const char *key, char *out, int cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(json, pat);
    if (!p) return -1;
    p += strlen(pat);
    int n = 0;
    while (*p && *p != '"') {
        if (*p == '\\' && p[1]) {
            if (n + 2 >= cap) return -1;
            out[n++] = *p++;
        }
        if (n + 1 >= cap) return -1;
        out[n++] = *p++;
    }
    out[n] = 0;
    return n;
}

static int count(const char *s, const char *what) {
    int n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what)) n++;
    return n;
}

VIGIL_RUNBOOK_V1 {
    int32_t n = vigil_input(input, sizeof input - 1);
    if (n < 0 || n >= (int32_t)sizeof input) {
        say(VIGIL_ERROR, "the input does not fit");
        return 2;
    }
    input[n] = 0;
    char query[4096];
    if (string_field(input, "query", query, sizeof query) < 0) {
        say(VIGIL_ERROR, "parameter query is missing");
        return 3;
    }
    int len = snprintf(buf, sizeof buf, "{\"query\":\"%s\"}", query);
    int32_t r = vigil_call("query.promql", 12, buf, len);
    int32_t got = vigil_result(reply, sizeof reply - 1);
    reply[got > 0 && got < (int32_t)sizeof reply ? got : 0] = 0;
    if (r < 0) {
        snprintf(buf, sizeof buf, "query.promql failed (%d): %s", r, reply);
        say(VIGIL_ERROR, buf);
        return 4;
    }
    int series = count(reply, "\"metric\"");
    snprintf(buf, sizeof buf, "%s returned %d series", query, series);
    say(VIGIL_INFO, buf);
    len = snprintf(buf, sizeof buf, "{\"note\":\"diagnose: %s returned %d series\"}", query, series);
    r = vigil_call("alert.annotate", 14, buf, len);
    if (r < 0 && r != VIGIL_RESOLVED) {
        say(VIGIL_WARN, "could not annotate the alert");
    }
    len = snprintf(buf, sizeof buf, "{\"query\":\"%s\",\"series\":%d}", query, series);
    vigil_output(buf, len);
    return 0;
}
