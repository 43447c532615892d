/* A program that knows libdgram only from an installed prefix: built by
 * test_install.sh through pkg-config and through find_package(dgram). Sends
 * itself one datagram over 127.0.0.1 and checks it came back whole. */
#include <stdio.h>
#include <string.h>

#include <dgram.h>

static int received;

static void on_message(dgram_socket *s, const uint8_t *msg, size_t len, const dgram_addr *rinfo,
                       void *userdata) {
    (void)s, (void)rinfo, (void)userdata;
    if (len == 5 && memcmp(msg, "hello", 5) == 0)
        received++;
}

int main(void) {
    char macros[32];
    snprintf(macros, sizeof macros, "%d.%d.%d", DGRAM_VERSION_MAJOR, DGRAM_VERSION_MINOR,
             DGRAM_VERSION_PATCH);
    if (strcmp(macros, dgram_version()) != 0) {
        fprintf(stderr, "header %s, library %s\n", macros, dgram_version());
        return 1;
    }
    dgram_context *ctx = dgram_context_new(NULL);
    dgram_socket *s = NULL;
    if (!ctx || dgram_create_socket(ctx, NULL, on_message, NULL, &s) != 0)
        return 1;
    dgram_addr self;
    if (dgram_bind(s, 0, "127.0.0.1", NULL) != 0 || dgram_address(s, &self) != 0)
        return 1;
    if (dgram_send(s, "hello", 5, self.port, "127.0.0.1", NULL, NULL) != 0)
        return 1;
    for (int i = 0; i < 100 && received == 0; i++)
        if (dgram_context_run(ctx, 50) < 0)
            return 1;
    dgram_socket_free(s);
    dgram_context_free(ctx);
    printf("libdgram %s: %s\n", dgram_version(), received == 1 ? "ok" : "no datagram");
    return received == 1 ? 0 : 1;
}
