/*
 * multicast-chat: a group chat over UDP multicast.
 *
 *   multicast-chat [--group ADDR] [--port N] [--ttl N] [--loopback on|off]
 *
 * Every chat joins the multicast group ADDR (default 239.255.0.1, in the
 * administratively scoped range 239.255.0.0/16 meant for local use) and binds
 * UDP port N (default 41234) with SO_REUSEADDR, so several chats on one
 * machine can share the port. Each line typed on stdin is sent to the group
 * as one datagram (empty lines are skipped); each datagram received from the
 * group is printed on stdout as
 *
 *   <address>:<port>: <text>
 *
 * with control characters replaced by '?'. An IPv6 group (ff15::1234) makes
 * it a udp6 chat.
 *
 * --ttl N (0..255, default 1) is how many routers a line may cross: 1 keeps
 * it on the local network. --loopback on (the default, as in the OS) delivers
 * your lines to the sockets of this machine too: you see your own lines come
 * back, and other chats on this machine see them. With --loopback off your
 * lines leave only through the network interface: neither you nor other
 * chats on this machine see them.
 * --port 0 lets the OS pick a free port (others must then be told it).
 *
 * Once the socket is bound and has joined the group, a line
 * "joined <group> on port <port> ..." goes to stderr. At the end of stdin
 * (Ctrl-D) the chat waits until every line was handed to the kernel, leaves
 * the group (what arrives from then on is not printed), closes the socket
 * and exits with status 0 (1 when a line could not be sent or setting up
 * failed, 2 for bad options).
 *
 * How it uses libdgram: a context in host-dispatch mode (the default), whose
 * callbacks run on this thread. One poll() waits on stdin and on the
 * context's notification fd (dgram_context_fd); when the latter is readable,
 * dgram_context_dispatch runs the callbacks of the waiting events (received
 * datagrams, send completions). This is how libdgram plugs into any existing
 * event loop.
 *
 * The interface used for sending and joining is the one the kernel's routing
 * table gives for the group: on a machine without a default route, add one
 * for multicast (ip route add 224.0.0.0/4 dev eth0).
 */
#define _GNU_SOURCE /* getopt_long */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dgram.h"

/* Stop reading stdin while this many sends wait for their completion, so a
 * fast producer (a pipe) cannot fill the library's send queue. */
enum { MAX_IN_FLIGHT = 64 };

typedef struct {
    dgram_socket *sock;
    const char *group;
    int port;
    unsigned in_flight; /* sends accepted but not completed yet */
    int errors;         /* failed sends and other runtime errors */
    char buf[4096];     /* stdin bytes not yet sent (a partial line) */
    size_t used;
} chat;

static void usage(FILE *out) {
    fprintf(out,
            "usage: multicast-chat [--group ADDR] [--port N] [--ttl N] [--loopback on|off]\n"
            "  --group ADDR       multicast group, IPv4 or IPv6 (default 239.255.0.1)\n"
            "  --port N           UDP port, 0..65535; 0 lets the OS pick (default 41234)\n"
            "  --ttl N            multicast TTL / hop limit, 0..255 (default 1: local network)\n"
            "  --loopback on|off  also deliver own lines to this machine (default on)\n"
            "Lines read from stdin go to the group; lines from the group are printed as\n"
            "<address>:<port>: <text>. End of input (Ctrl-D) leaves the group.\n");
}

/* Parses a decimal integer in [min, max]; false when it is not one. */
static bool parse_int(const char *text, long min, long max, int *out) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < min || v > max)
        return false;
    *out = (int)v;
    return true;
}

/* True when `text` is an IPv4 or IPv6 multicast address; sets *type. */
static bool parse_group(const char *text, dgram_type *type) {
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, text, &a4) == 1) {
        *type = DGRAM_UDP4;
        return IN_MULTICAST(ntohl(a4.s_addr));
    }
    if (inet_pton(AF_INET6, text, &a6) == 1) {
        *type = DGRAM_UDP6;
        return IN6_IS_ADDR_MULTICAST(&a6);
    }
    return false;
}

/* 'message': a line from the group. msg and rinfo are valid only during
 * this callback. */
static void on_message(dgram_socket *s, const uint8_t *msg, size_t len, const dgram_addr *rinfo, void *userdata) {
    (void)s;
    (void)userdata;
    printf(rinfo->family == DGRAM_IPV6 ? "[%s]:%u: " : "%s:%u: ", rinfo->address, rinfo->port);
    for (size_t i = 0; i < len; i++) /* never let a peer drive our terminal */
        putchar(msg[i] < 0x20 || msg[i] == 0x7f ? '?' : msg[i]);
    putchar('\n');
    fflush(stdout);
}

/* 'error': asynchronous errors with no callback of their own (receive errors). */
static void on_error(dgram_socket *s, const dgram_error *err, void *userdata) {
    (void)s;
    chat *c = userdata;
    fprintf(stderr, "multicast-chat: %s: %s\n", err->syscall, dgram_strerror(err->code));
    c->errors++;
}

/* Completion of one dgram_send: err is NULL when the kernel took the datagram. */
static void on_sent(dgram_socket *s, const dgram_error *err, size_t length, void *send_data) {
    (void)s;
    chat *c = send_data;
    c->in_flight--;
    if (err) {
        fprintf(stderr, "multicast-chat: a line of %zu bytes was not sent: %s (%s)\n", length,
                dgram_strerror(err->code), err->syscall);
        c->errors++;
    }
}

/* Sends one line to the group. dgram_send copies the bytes before it
 * returns; the result comes later, to on_sent. */
static void send_line(chat *c, const char *text, size_t len) {
    if (len == 0)
        return;
    int rc = dgram_send(c->sock, text, len, c->port, c->group, on_sent, c);
    if (rc == 0) {
        c->in_flight++;
    } else {
        fprintf(stderr, "multicast-chat: send: %s\n", dgram_strerror(rc));
        c->errors++;
    }
}

/* Reads what stdin has and sends every complete line. Returns false at the
 * end of input (after sending a last line that has no newline). */
static bool read_stdin(chat *c) {
    ssize_t n = read(STDIN_FILENO, c->buf + c->used, sizeof c->buf - c->used);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (n <= 0) {
        if (n < 0) {
            perror("multicast-chat: stdin");
            c->errors++;
        }
        send_line(c, c->buf, c->used);
        c->used = 0;
        return false;
    }
    c->used += (size_t)n;
    size_t start = 0;
    for (size_t i = start; i < c->used; i++) {
        if (c->buf[i] == '\n') {
            send_line(c, c->buf + start, i - start);
            start = i + 1;
        }
    }
    memmove(c->buf, c->buf + start, c->used - start);
    c->used -= start;
    if (c->used == sizeof c->buf) { /* a line longer than the buffer: send it in pieces */
        send_line(c, c->buf, c->used);
        c->used = 0;
    }
    return true;
}

int main(int argc, char **argv) {
    const char *group = "239.255.0.1";
    int port = 41234, ttl = 1;
    bool loopback = true;
    dgram_type type = DGRAM_UDP4;

    static const struct option options[] = {
        {"group", required_argument, NULL, 'g'},
        {"port", required_argument, NULL, 'p'},
        {"ttl", required_argument, NULL, 't'},
        {"loopback", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt, which = 0;
    while ((opt = getopt_long(argc, argv, "", options, &which)) != -1) {
        bool ok = true;
        switch (opt) {
        case 'g': group = optarg; break;
        case 'p': ok = parse_int(optarg, 0, 65535, &port); break;
        case 't': ok = parse_int(optarg, 0, 255, &ttl); break;
        case 'l':
            ok = strcmp(optarg, "on") == 0 || strcmp(optarg, "off") == 0;
            loopback = strcmp(optarg, "on") == 0;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2; /* getopt_long has said what is wrong */
        }
        if (!ok) {
            fprintf(stderr, "multicast-chat: bad value for --%s: '%s'\n", options[which].name, optarg);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "multicast-chat: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (!parse_group(group, &type)) {
        fprintf(stderr, "multicast-chat: '%s' is not a multicast address\n", group);
        usage(stderr);
        return 2;
    }

    /* Started with stdin closed, fd 0 would go to the library's own fds. */
    if (fcntl(STDIN_FILENO, F_GETFL) < 0) {
        fprintf(stderr, "multicast-chat: stdin is closed\n");
        return 1;
    }

    /* One context: its I/O thread does the socket work; its callbacks run
     * here, inside dgram_context_dispatch (DGRAM_DISPATCH_HOST, the default). */
    dgram_context *ctx = dgram_context_new(NULL);
    if (!ctx) {
        fprintf(stderr, "multicast-chat: cannot create a libdgram context\n");
        return 1;
    }
    chat c = {.group = group};

    /* reuse_addr (SO_REUSEADDR): several chats on this machine bind the same
     * port, and each of them gets every datagram sent to the group. */
    dgram_socket_options sopts = {.type = type, .reuse_addr = true};
    int rc = dgram_create_socket(ctx, &sopts, on_message, &c, &c.sock);
    if (rc == 0)
        rc = dgram_on_error(c.sock, on_error);
    /* Bind every interface (NULL address), so datagrams sent to the group
     * reach us; bind(2) happens in this call. */
    if (rc == 0)
        rc = dgram_bind(c.sock, port, NULL, NULL);
    /* Join the group; NULL lets the kernel choose the interface by route. */
    if (rc == 0)
        rc = dgram_add_membership(c.sock, group, NULL);
    if (rc == 0)
        rc = dgram_set_multicast_ttl(c.sock, ttl);
    if (rc == 0)
        rc = dgram_set_multicast_loopback(c.sock, loopback);
    dgram_addr local;
    if (rc == 0)
        rc = dgram_address(c.sock, &local); /* the port the OS picked for --port 0 */
    if (rc != 0) {
        fprintf(stderr, "multicast-chat: cannot join %s on port %d: %s (%s)\n", group, port, dgram_strerror(rc),
                dgram_err_name(rc));
        dgram_socket_free(c.sock);
        dgram_context_free(ctx);
        return 1;
    }
    c.port = local.port; /* lines go to the group on the port we listen on */
    fprintf(stderr, "joined %s on port %u (ttl %d, loopback %s); Ctrl-D leaves\n", group, local.port, ttl,
            loopback ? "on" : "off");

    /* The host loop: wait on stdin and on the context's fd together. Stdin
     * is read with read(2), not stdio, so that no line hides in a stdio
     * buffer while poll() says there is nothing to read. After the end of
     * input, keep dispatching until every send has completed. */
    bool input_open = true;
    int ctx_fd = dgram_context_fd(ctx);
    while (input_open || c.in_flight > 0) {
        struct pollfd fds[2] = {
            {.fd = ctx_fd, .events = POLLIN},
            /* A negative fd is ignored by poll(): no reading while too
             * many sends are in flight, or after the end of input. */
            {.fd = input_open && c.in_flight < MAX_IN_FLIGHT ? STDIN_FILENO : -1, .events = POLLIN},
        };
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("multicast-chat: poll");
            c.errors++;
            break;
        }
        if (fds[0].revents & POLLIN)
            dgram_context_dispatch(ctx, 0); /* runs on_message, on_sent, on_error */
        if (fds[1].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))
            input_open = read_stdin(&c);
    }

    /* Leave the group (closing would too), close, and run the loop until the
     * 'close' event is in and nothing is left active; then release. */
    rc = dgram_drop_membership(c.sock, group, NULL);
    if (rc != 0)
        fprintf(stderr, "multicast-chat: leaving %s: %s\n", group, dgram_strerror(rc));
    dgram_close(c.sock, NULL);
    while (dgram_context_active(ctx) > 0 && dgram_context_run(ctx, 5000) > 0)
        ;
    dgram_socket_free(c.sock);
    dgram_context_free(ctx);
    return c.errors == 0 && rc == 0 ? 0 : 1;
}
