/*
 * echo: a UDP echo server and client over loopback, in one process.
 *
 * The server echoes every datagram back to its sender; the client sends a few
 * lines, prints what comes back, and closes both sockets. The host loop is
 * the library's own dgram_context_run, driven until nothing is left to do,
 * the way a libuv or Node loop exits when its handles are gone.
 *
 * Exit status 0 when every line came back unchanged.
 */
#include <stdio.h>
#include <string.h>

#include "dgram.h"

static const char *const lines[] = {"hello", "from libdgram", "over loopback", ""};
enum { LINE_COUNT = sizeof lines / sizeof lines[0] };

typedef struct {
    dgram_socket *server;
    dgram_socket *client;
    int echoed;
    int failures;
} demo;

static void on_server_message(dgram_socket *s, const uint8_t *msg, size_t len, const dgram_addr *rinfo,
                              void *userdata) {
    (void)userdata;
    printf("server: %zu bytes from %s:%u, echoing\n", len, rinfo->address, rinfo->port);
    /* msg is only valid during this callback, but dgram_send copies it. */
    int rc = dgram_send(s, msg, len, rinfo->port, rinfo->address, NULL, NULL);
    if (rc != 0)
        fprintf(stderr, "server: send failed: %s\n", dgram_strerror(rc));
}

static void on_client_message(dgram_socket *s, const uint8_t *msg, size_t len, const dgram_addr *rinfo,
                              void *userdata) {
    demo *d = userdata;
    (void)s;
    const char *expected = lines[d->echoed];
    int same = len == strlen(expected) && memcmp(msg, expected, len) == 0;
    printf("client: got \"%.*s\" back from %s:%u%s\n", (int)len, (const char *)msg, rinfo->address, rinfo->port,
           same ? "" : " (MISMATCH)");
    d->failures += !same;
    if (++d->echoed == LINE_COUNT) {
        dgram_close(d->client, NULL);
        dgram_close(d->server, NULL);
    }
}

static void on_sent(dgram_socket *s, const dgram_error *err, size_t length, void *send_data) {
    (void)s;
    if (err) {
        fprintf(stderr, "client: send of \"%s\" failed: %s (%s)\n", (const char *)send_data, dgram_err_name(err->code),
                err->syscall);
    } else {
        printf("client: sent \"%s\" (%zu bytes)\n", (const char *)send_data, length);
    }
}

static void on_listening(dgram_socket *s, void *userdata) {
    (void)userdata;
    dgram_addr a;
    if (dgram_address(s, &a) == 0)
        printf("server: listening on %s:%u\n", a.address, a.port);
}

int main(void) {
    printf("libdgram %s echo demo\n", dgram_version());
    dgram_context *ctx = dgram_context_new(NULL);
    if (!ctx) {
        fprintf(stderr, "cannot create a context\n");
        return 1;
    }
    demo d = {0};
    int rc = dgram_create_socket(ctx, NULL, on_server_message, &d, &d.server);
    if (rc == 0)
        rc = dgram_bind(d.server, 0, "127.0.0.1", on_listening);
    if (rc == 0)
        rc = dgram_create_socket(ctx, NULL, on_client_message, &d, &d.client);
    dgram_addr server_addr;
    if (rc == 0)
        rc = dgram_address(d.server, &server_addr);
    for (int i = 0; rc == 0 && i < LINE_COUNT; i++)
        rc = dgram_send(d.client, lines[i], strlen(lines[i]), server_addr.port, "127.0.0.1", on_sent,
                        (void *)lines[i]);
    if (rc != 0) {
        fprintf(stderr, "setup failed: %s (%s)\n", dgram_err_name(rc), dgram_strerror(rc));
        return 1;
    }

    /* The host loop: run until both sockets are closed and every event is in. */
    while (dgram_context_active(ctx) > 0) {
        rc = dgram_context_run(ctx, 5000);
        if (rc == 0) {
            fprintf(stderr, "no event for 5 s: giving up\n");
            d.failures++;
            break;
        }
    }

    dgram_socket_free(d.client);
    dgram_socket_free(d.server);
    dgram_context_free(ctx);
    int ok = d.failures == 0 && d.echoed == LINE_COUNT;
    printf("%s: %d of %d lines echoed\n", ok ? "ok" : "FAILED", d.echoed, LINE_COUNT);
    return ok ? 0 : 1;
}
