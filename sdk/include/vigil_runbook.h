/* Vigil runbook ABI v1, for C and Zig (sdk/README.md is the reference).
 *
 * A runbook defines `int vigil_runbook_v1(void)` with VIGIL_RUNBOOK_V1 and talks to the host through
 * the five imports below; messages are JSON in the guest's linear memory. Build with
 *   clang --target=wasm32-wasi -O2 -mexec-model=reactor -o NAME.wasm NAME.c
 * (a reactor: no _start; the host calls the entry point, after _initialize when it is exported).
 */
#ifndef VIGIL_RUNBOOK_H
#define VIGIL_RUNBOOK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VIGIL_IMPORT(name) __attribute__((import_module("vigil"), import_name(name)))

/* Negative statuses of vigil_call; the last result then holds {"error": "..."}. */
#define VIGIL_DENIED (-1)      /* not granted, or the target is outside the grant's scope */
#define VIGIL_FAILED (-2)      /* the capability ran and failed */
#define VIGIL_BAD_REQUEST (-3) /* unknown capability or arguments it cannot take */
#define VIGIL_TIMEOUT (-4)     /* the call exceeded its timeout */
#define VIGIL_RESOLVED (-5)    /* the alert resolved: the host no longer acts on it */

/* Log levels of vigil_log. */
#define VIGIL_DEBUG 0
#define VIGIL_INFO 1
#define VIGIL_WARN 2
#define VIGIL_ERROR 3

/* Copies the run's input document into buf if it fits in cap bytes; returns its length either way. */
VIGIL_IMPORT("input") int32_t vigil_input(char *buf, int32_t cap);
/* Calls a capability with a JSON object; returns the result's length (>= 0) or a negative status. */
VIGIL_IMPORT("call")
int32_t vigil_call(const char *name, int32_t name_len, const char *args, int32_t args_len);
/* Copies the last call's result (or {"error": ...}) into buf if it fits; returns its length. */
VIGIL_IMPORT("result") int32_t vigil_result(char *buf, int32_t cap);
/* Appends a line to the execution record. */
VIGIL_IMPORT("log") void vigil_log(int32_t level, const char *msg, int32_t len);
/* Sets the run's summary (a JSON value). */
VIGIL_IMPORT("output") void vigil_output(const char *json, int32_t len);

/* Exports the entry point: VIGIL_RUNBOOK_V1 { ...; return 0; } */
#define VIGIL_RUNBOOK_V1 \
    __attribute__((export_name("vigil_runbook_v1"))) int32_t vigil_runbook_v1(void)

#ifdef __cplusplus
}
#endif

#endif
