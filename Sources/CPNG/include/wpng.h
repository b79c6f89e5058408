#ifndef WPNG_H
#define WPNG_H
#include <stddef.h>
#include <stdint.h>

/// Receives encoded PNG bytes as libpng produces them; returns 0 to continue, non-zero to abort.
typedef int (*wpng_write_fn)(void *context, const uint8_t *bytes, size_t count);

/// Encodes an 8-bit RGB image row by row, handing bytes to `write` as they are produced.
/// `level` is the zlib compression level (0-9). Returns 0 on success; on failure non-zero with a
/// message in `error` (libpng reports errors by longjmp, which this C shim catches so Swift never sees it).
int wpng_encode_rgb8(const uint8_t *rgb, int width, int height, size_t row_stride, int level,
                     wpng_write_fn write, void *context, char *error, size_t error_size);

/// Decodes a PNG held in memory to 8-bit RGB through libpng's simplified API (which reports errors
/// without longjmp). On success returns 0, sets width and height, and `*rgb` to a malloc'd buffer the
/// caller frees with `wpng_free`.
int wpng_decode_rgb8(const uint8_t *png, size_t size, uint8_t **rgb, int *width, int *height, char *error,
                     size_t error_size);

/// Frees a buffer from `wpng_decode_rgb8`.
void wpng_free(void *p);

#endif
