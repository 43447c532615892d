/*
 * The layout of every struct of include/dgram.h, as literal numbers: the
 * same numbers src/types.rs asserts of the Rust definitions, so a C compiler
 * that lays the header out otherwise than the library was built for fails
 * here, at compile time. Built natively by c-tests/CMakeLists.txt (and by
 * scripts/cross.sh's cross compilers), and by scripts/layout-check.sh with
 * arm-none-eabi-gcc for NuttX's boards, with and without -fshort-enums, and
 * gcc -m32. It needs only the freestanding headers (stdbool.h, stddef.h,
 * stdint.h), as dgram.h itself.
 *
 * No struct holds an enum: the fields that take an enum's values are
 * int32_t, so the size of an enum (1 byte with -fshort-enums) changes none
 * of the numbers below.
 */
#include <stddef.h>
#include <stdint.h>

#include "dgram.h"

#define FIELD_SIZE(type, field) sizeof(((type *)0)->field)

#define PIN_SIZE(type, size, align)                                                  \
    _Static_assert(sizeof(type) == (size), "size of " #type " changed");            \
    _Static_assert(_Alignof(type) == (align), "alignment of " #type " changed")
#define PIN_FIELD(type, field, offset) \
    _Static_assert(offsetof(type, field) == (offset), "offset of " #type "." #field " changed")

/* The same on every target: 32-bit fields, bytes and bools only. */
PIN_SIZE(dgram_context_options, 8, 4);
PIN_FIELD(dgram_context_options, dispatch, 0);
PIN_FIELD(dgram_context_options, max_pending_events, 4);

PIN_SIZE(dgram_socket_options, 16, 4);
PIN_FIELD(dgram_socket_options, type, 0);
PIN_FIELD(dgram_socket_options, reuse_addr, 4);
PIN_FIELD(dgram_socket_options, ipv6_only, 5);
PIN_FIELD(dgram_socket_options, recv_buffer_size, 8);
PIN_FIELD(dgram_socket_options, send_buffer_size, 12);

PIN_SIZE(dgram_addr, 52, 4);
PIN_FIELD(dgram_addr, address, 0);
PIN_FIELD(dgram_addr, port, 46);
PIN_FIELD(dgram_addr, family, 48);

#if UINTPTR_MAX == 0xffffffff
/* Pointers and size_t: 4 bytes on 32-bit targets. */
PIN_SIZE(dgram_error, 64, 4);
PIN_FIELD(dgram_error, code, 0);
PIN_FIELD(dgram_error, syscall, 4);
PIN_FIELD(dgram_error, addr, 8);
PIN_FIELD(dgram_error, hostname, 60);

PIN_SIZE(dgram_buf, 8, 4);
PIN_FIELD(dgram_buf, base, 0);
PIN_FIELD(dgram_buf, len, 4);
#elif UINTPTR_MAX == 0xffffffffffffffff
/* Pointers and size_t: 8 bytes on 64-bit targets. */
PIN_SIZE(dgram_error, 80, 8);
PIN_FIELD(dgram_error, code, 0);
PIN_FIELD(dgram_error, syscall, 8);
PIN_FIELD(dgram_error, addr, 16);
PIN_FIELD(dgram_error, hostname, 72);

PIN_SIZE(dgram_buf, 16, 8);
PIN_FIELD(dgram_buf, base, 0);
PIN_FIELD(dgram_buf, len, 8);
#else
#error "no layout of dgram.h is pinned for this pointer width: add its numbers here and in src/types.rs"
#endif

#if !defined(__i386__)
/* 64-bit integers are 8-aligned on 64-bit targets and on 32-bit ARM
 * (AAPCS), so dgram_meta.timestamp_sec has 4 bytes of padding before it... */
PIN_SIZE(dgram_meta, 88, 8);
PIN_FIELD(dgram_meta, local, 0);
PIN_FIELD(dgram_meta, ifindex, 52);
PIN_FIELD(dgram_meta, ttl, 56);
PIN_FIELD(dgram_meta, timestamp_sec, 64);
PIN_FIELD(dgram_meta, timestamp_nsec, 72);
PIN_FIELD(dgram_meta, has_local, 76);
PIN_FIELD(dgram_meta, has_ttl, 77);
PIN_FIELD(dgram_meta, has_timestamp, 78);
PIN_FIELD(dgram_meta, truncated, 79);
PIN_FIELD(dgram_meta, gro_segment_size, 80);

PIN_SIZE(dgram_stats, 56, 8);
#else
/* ...but only 4-aligned in structs on 32-bit x86 (the i386 System V ABI,
 * which Rust follows too). */
PIN_SIZE(dgram_meta, 80, 4);
PIN_FIELD(dgram_meta, local, 0);
PIN_FIELD(dgram_meta, ifindex, 52);
PIN_FIELD(dgram_meta, ttl, 56);
PIN_FIELD(dgram_meta, timestamp_sec, 60);
PIN_FIELD(dgram_meta, timestamp_nsec, 68);
PIN_FIELD(dgram_meta, has_local, 72);
PIN_FIELD(dgram_meta, has_ttl, 73);
PIN_FIELD(dgram_meta, has_timestamp, 74);
PIN_FIELD(dgram_meta, truncated, 75);
PIN_FIELD(dgram_meta, gro_segment_size, 76);

PIN_SIZE(dgram_stats, 56, 4);
#endif
PIN_FIELD(dgram_stats, datagrams_received, 0);
PIN_FIELD(dgram_stats, bytes_received, 8);
PIN_FIELD(dgram_stats, datagrams_sent, 16);
PIN_FIELD(dgram_stats, bytes_sent, 24);
PIN_FIELD(dgram_stats, dropped_queue_full, 32);
PIN_FIELD(dgram_stats, dropped_by_kernel, 40);
PIN_FIELD(dgram_stats, send_errors, 48);

/* The fields that take an enum's values are 4 bytes whatever the size of
 * the enum, and every constant fits them. */
_Static_assert(FIELD_SIZE(dgram_context_options, dispatch) == 4, "dispatch is an int32_t");
_Static_assert(FIELD_SIZE(dgram_socket_options, type) == 4, "type is an int32_t");
_Static_assert(FIELD_SIZE(dgram_addr, family) == 4, "family is an int32_t");
_Static_assert(DGRAM_DISPATCH_HOST == 0 && DGRAM_DISPATCH_IO_THREAD == 1, "dgram_dispatch values");
_Static_assert(DGRAM_UDP4 == 0 && DGRAM_UDP6 == 1, "dgram_type values");
_Static_assert(DGRAM_IPV4 == 4 && DGRAM_IPV6 == 6, "dgram_family values");

/* Where the compiler tells its enum size (ARM's ACLE macro), the enums are
 * that size: with -fshort-enums 1 byte, so this file compiled the structs
 * above with short enums indeed. */
#ifdef __ARM_SIZEOF_MINIMAL_ENUM
_Static_assert(sizeof(dgram_dispatch) == __ARM_SIZEOF_MINIMAL_ENUM, "enum size as the compiler says");
_Static_assert(sizeof(dgram_type) == __ARM_SIZEOF_MINIMAL_ENUM, "enum size as the compiler says");
_Static_assert(sizeof(dgram_family) == __ARM_SIZEOF_MINIMAL_ENUM, "enum size as the compiler says");
#endif

/* A program, so that CTest lists the check (layout_check) beside the other
 * tests: everything it checks was checked when it compiled. */
int main(void) { return 0; }
