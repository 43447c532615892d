/* The JavaScript modules compiled into dgramjs (hosts/js/lib, one per .js file). */
#ifndef DGRAMJS_BUILTINS_H
#define DGRAMJS_BUILTINS_H
#include <stddef.h>

typedef struct {
    const char *name;   /* file name without .js: "dgram", "events", ... */
    const char *source; /* NUL-terminated UTF-8 source */
    size_t length;      /* bytes, without the NUL */
} dgramjs_builtin;

extern const dgramjs_builtin dgramjs_builtins[];

#endif
