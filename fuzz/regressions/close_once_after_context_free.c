/* Reproducer for fuzz/regressions/close-once-after-context-free (found by the
 * api_sequence fuzz target): dgram_context_free called from a socket's
 * persistent 'close' handler does not stop the one-shot close callback of
 * that same event, although the header says "no callback runs afterwards".
 *
 *   cargo build --release
 *   cc -Iinclude fuzz/regressions/close_once_after_context_free.c \
 *      target/release/libdgram.a -lpthread -ldl -lm -lrt -lutil -lgcc_s -o /tmp/repro && /tmp/repro
 *
 * Exits 1 while the bug is there, 0 once fixed. Touches no network (the
 * socket is never bound). */
#include <stdio.h>
#include "dgram.h"

static dgram_context *ctx;
static int context_freed;
static int once_after_free;

static void on_close(dgram_socket *s, void *userdata) {
    (void)s;
    (void)userdata;
    dgram_context_free(ctx); /* allowed from inside a callback */
    context_freed = 1;
}

static void on_close_once(dgram_socket *s, void *userdata) {
    (void)s;
    (void)userdata;
    if (context_freed)
        once_after_free = 1; /* a host may have released this callback's state */
}

int main(void) {
    dgram_socket *s;
    ctx = dgram_context_new(NULL);
    if (!ctx || dgram_create_socket(ctx, NULL, NULL, NULL, &s) != 0)
        return 2;
    dgram_on_close(s, on_close);
    dgram_close(s, on_close_once);
    dgram_context_dispatch(ctx, 0); /* runs on_close, which frees the context */
    dgram_socket_free(s);
    if (once_after_free) {
        fprintf(stderr, "BUG: the one-shot close callback ran after dgram_context_free returned\n");
        return 1;
    }
    puts("ok: no callback after dgram_context_free");
    return 0;
}
