/*
 * The one runner of libdgram's C suite, in the spirit of libuv's: a test
 * program lists its cases at its end,
 *
 *     TEST_LIST(
 *         TEST_ENTRY(test_bind_port_zero_loopback),
 *         TEST_ENTRY(test_bind_localhost),
 *     )
 *
 * and TEST_LIST defines main():
 *
 *     prog --list   prints the cases' names, one a line;
 *     prog NAME     runs case NAME in this process (how CTest runs each case,
 *                   natively, under valgrind and under qemu-user);
 *     prog          runs every case, each in a child process of its own
 *                   (fork), reports each one and exits 1 if any failed.
 *
 * c-tests/CMakeLists.txt reads the TEST_ENTRY lines of each source and
 * registers one CTest entry per case: keep one TEST_ENTRY a line.
 *
 * A case is a `static void name(void)`. It makes its own contexts with
 * test_context() and ends each one with test_context_finish(), which checks
 * that nothing is left active before freeing it; a case that returns with a
 * context made by test_context() still open fails. A case that frees a
 * context some other way (from inside a callback, say) says so with
 * test_context_forget(). A case that cannot run here calls test_skip()
 * (exit 77); a failed check exits 1. Each case has a watchdog of
 * TEST_CASE_SECONDS (a case may set its own with test_watchdog()).
 */
#ifndef DGRAM_TEST_RUNNER_H
#define DGRAM_TEST_RUNNER_H

#include "test_util.h"

#define TEST_CASE_SECONDS 120

typedef struct {
    const char *name;
    void (*run)(void);
} test_case;

#define TEST_ENTRY(fn) {#fn, fn}

/* Runs one case in this process: the watchdog, the case, then the check
 * that it finished every context it made. */
static inline int test_run_case(const test_case *c) {
    setvbuf(stdout, NULL, _IONBF, 0);
    test_watchdog(TEST_CASE_SECONDS);
    c->run();
    if (test_load(&test_open_contexts) != 0)
        FAIL("%s returned with %d context(s) made by test_context() not finished"
             " (test_context_finish)", c->name, test_load(&test_open_contexts));
    printf("ok %s\n", c->name);
    return 0;
}

/* Runs every case, each in a forked child, and prints one line per case and
 * a closing "N passed, N failed, N skipped" line. The parent makes no
 * thread and no context, so each child starts as a fresh single-threaded
 * process (as the namespace tests need). */
static inline int test_run_all(const test_case *cases, size_t n) {
    int passed = 0, failed = 0, skipped = 0;
    setvbuf(stdout, NULL, _IONBF, 0);
    for (size_t i = 0; i < n; i++) {
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0)
            _exit(test_run_case(&cases[i]));
        int status = 0;
        while (waitpid(pid, &status, 0) < 0) {
            if (errno != EINTR) {
                perror("waitpid");
                return 1;
            }
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            passed++;
        } else if (WIFEXITED(status) && WEXITSTATUS(status) == TEST_SKIP) {
            skipped++;
            printf("skip %s\n", cases[i].name);
        } else {
            failed++;
            if (WIFSIGNALED(status))
                printf("not ok %s (signal %d)\n", cases[i].name, WTERMSIG(status));
            else
                printf("not ok %s (exit %d)\n", cases[i].name, WEXITSTATUS(status));
        }
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}

static inline int test_main(int argc, char **argv, const test_case *cases, size_t n) {
    if (argc == 1)
        return test_run_all(cases, n);
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < n; i++)
            printf("%s\n", cases[i].name);
        return 0;
    }
    if (argc == 2) {
        for (size_t i = 0; i < n; i++)
            if (strcmp(argv[1], cases[i].name) == 0)
                return test_run_case(&cases[i]);
        fprintf(stderr, "%s: no case named %s (--list lists them)\n", argv[0], argv[1]);
        return 2;
    }
    fprintf(stderr, "usage: %s [--list | CASE]\n", argv[0]);
    return 2;
}

#define TEST_LIST(...)                                                         \
    static const test_case test_cases_[] = {__VA_ARGS__};                      \
    int main(int argc, char **argv) {                                          \
        return test_main(argc, argv, test_cases_,                              \
                         sizeof test_cases_ / sizeof test_cases_[0]);          \
    }

#endif /* DGRAM_TEST_RUNNER_H */
