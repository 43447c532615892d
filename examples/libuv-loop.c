/* libdgram inside a libuv loop: the integration an IoT.js-like runtime does.
 *
 * The context dispatches on the host's thread (DGRAM_DISPATCH_HOST). Its fd
 * goes into a uv_poll_t; when libuv says it is readable, the poll callback
 * calls dgram_context_dispatch(), and libdgram's callbacks run right there,
 * on the loop's thread, like any other libuv callback. A uv_timer_t beside
 * it sends a ping every 20 ms; an echo server answers; after five answers
 * everything closes, the poll handle is stopped once dgram_context_active()
 * says libdgram has nothing left to do, and uv_run returns.
 *
 * Build: cc libuv-loop.c $(pkg-config --cflags --libs dgram libuv) -o libuv-loop
 * Run:   ./libuv-loop        (127.0.0.1 only; exits 0 after five round trips)
 */
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "dgram.h"

enum { PINGS = 5 };

typedef struct {
    uv_loop_t *loop;
    uv_poll_t poll;
    uv_timer_t timer;
    dgram_context *ctx;
    dgram_socket *server;
    dgram_socket *client;
    uint16_t server_port;
    int sent;
    int answered;
} app;

static void stop_if_done(app *a);

/* The server echoes every datagram to where it came from. */
static void on_server_message(dgram_socket *s, const uint8_t *msg, size_t len, const dgram_addr *rinfo,
                              void *userdata) {
    (void)userdata;
    int rc = dgram_send(s, msg, len, rinfo->port, rinfo->address, NULL, NULL);
    if (rc != 0)
        fprintf(stderr, "server: send: %s\n", dgram_strerror(rc));
}

static void on_client_message(dgram_socket *s, const uint8_t *msg, size_t len, const dgram_addr *rinfo,
                              void *userdata) {
    (void)s;
    app *a = userdata;
    printf("client: %.*s back from %s:%u\n", (int)len, (const char *)msg, rinfo->address, rinfo->port);
    if (++a->answered == PINGS) {
        /* Done: close both sockets; their 'close' events come through the
         * same poll handle, after which nothing is active. */
        uv_timer_stop(&a->timer);
        dgram_close(a->client, NULL);
        dgram_close(a->server, NULL);
    }
}

static void on_timer(uv_timer_t *timer) {
    app *a = timer->data;
    if (a->sent == PINGS)
        return;
    char text[32];
    int len = snprintf(text, sizeof text, "ping %d", ++a->sent);
    int rc = dgram_send(a->client, text, (size_t)len, a->server_port, "127.0.0.1", NULL, NULL);
    if (rc != 0)
        fprintf(stderr, "client: send: %s\n", dgram_strerror(rc));
}

/* libdgram has events waiting: run their callbacks now, on this thread. */
static void on_dgram_readable(uv_poll_t *poll, int status, int events) {
    (void)events;
    app *a = poll->data;
    if (status < 0) {
        fprintf(stderr, "poll: %s\n", uv_strerror(status));
        return;
    }
    int rc = dgram_context_dispatch(a->ctx, 0);
    if (rc < 0)
        fprintf(stderr, "dispatch: %s\n", dgram_strerror(rc));
    stop_if_done(a);
}

/* Like a runtime's loop-alive check: once libdgram has nothing left to do
 * (no bound open socket, no pending send or event), let go of its fd so the
 * libuv loop can end. */
static void stop_if_done(app *a) {
    if (dgram_context_active(a->ctx) == 0 && uv_is_active((uv_handle_t *)&a->poll)) {
        uv_poll_stop(&a->poll);
        uv_close((uv_handle_t *)&a->poll, NULL);
        uv_close((uv_handle_t *)&a->timer, NULL);
    }
}

int main(void) {
    app a;
    memset(&a, 0, sizeof a);
    a.loop = uv_default_loop();
    a.ctx = dgram_context_new(NULL); /* host dispatch is the default */
    if (!a.ctx) {
        fprintf(stderr, "dgram_context_new failed\n");
        return 1;
    }
    if (dgram_create_socket(a.ctx, NULL, on_server_message, &a, &a.server) != 0 ||
        dgram_create_socket(a.ctx, NULL, on_client_message, &a, &a.client) != 0) {
        fprintf(stderr, "dgram_create_socket failed\n");
        return 1;
    }
    dgram_addr bound;
    int rc = dgram_bind(a.server, 0, "127.0.0.1", NULL);
    if (rc == 0)
        rc = dgram_address(a.server, &bound);
    if (rc != 0) {
        fprintf(stderr, "bind: %s\n", dgram_strerror(rc));
        return 1;
    }
    a.server_port = bound.port;
    printf("server: listening on %s:%u\n", bound.address, bound.port);

    uv_poll_init(a.loop, &a.poll, dgram_context_fd(a.ctx));
    a.poll.data = &a;
    uv_poll_start(&a.poll, UV_READABLE, on_dgram_readable);
    uv_timer_init(a.loop, &a.timer);
    a.timer.data = &a;
    uv_timer_start(&a.timer, on_timer, 20, 20);

    uv_run(a.loop, UV_RUN_DEFAULT);

    int ok = a.answered == PINGS;
    printf("%s: %d of %d pings answered\n", ok ? "ok" : "FAILED", a.answered, PINGS);
    dgram_socket_free(a.client);
    dgram_socket_free(a.server);
    dgram_context_free(a.ctx);
    uv_loop_close(a.loop);
    return ok ? 0 : 1;
}
