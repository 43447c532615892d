/* Reproducer for fuzz/regressions/send-len-over-isize-max (found by the
 * api_sequence fuzz target): dgram_send with a length above isize::MAX, such
 * as (size_t)-1, must answer DGRAM_EMSGSIZE ("every number out of range"),
 * but src/ffi.rs `bytes()` first makes a slice of that length
 * (slice::from_raw_parts), which is undefined behaviour in Rust; with debug
 * assertions (a debug build, or cargo-fuzz's) it aborts the process:
 * "unsafe precondition(s) violated: slice::from_raw_parts requires ... the
 * total size of the slice not to exceed `isize::MAX`". dgram_sendv's pieces
 * go through the same function.
 *
 *   cargo build            # debug: the check is on
 *   cc -Iinclude fuzz/regressions/send_len_over_isize_max.c \
 *      target/debug/libdgram.a -lpthread -ldl -lm -lrt -lutil -lgcc_s -o /tmp/repro && /tmp/repro
 *
 * Aborts (or exits 1) while the bug is there; exits 0 once both calls answer
 * DGRAM_EMSGSIZE. Sends nothing: the datagram is refused (127.0.0.1 only). */
#include <stdint.h>
#include <stdio.h>
#include "dgram.h"

int main(void) {
    static const char buf[16];
    dgram_context *ctx = dgram_context_new(NULL);
    dgram_socket *s;
    if (!ctx || dgram_create_socket(ctx, NULL, NULL, NULL, &s) != 0)
        return 2;
    int rc = dgram_send(s, buf, SIZE_MAX, 9, "127.0.0.1", NULL, NULL);
    dgram_buf pieces[2] = {{buf, 8}, {buf, SIZE_MAX - 4}};
    int rcv = dgram_sendv(s, pieces, 2, 9, "127.0.0.1", NULL, NULL);
    dgram_socket_free(s);
    dgram_context_free(ctx);
    if (rc != DGRAM_EMSGSIZE || rcv != DGRAM_EMSGSIZE) {
        fprintf(stderr, "BUG: send %d, sendv %d, expected DGRAM_EMSGSIZE (%d)\n", rc, rcv, DGRAM_EMSGSIZE);
        return 1;
    }
    puts("ok: DGRAM_EMSGSIZE");
    return 0;
}
