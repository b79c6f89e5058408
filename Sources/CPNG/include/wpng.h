#ifndef WPNG_H
#define WPNG_H
#include <stddef.h>
#include <stdint.h>

/// Receives encoded PNG bytes as libpng produces them; returns 0 to continue, non-zero to abort.
typedef int (*wpng_write_fn)(void *context, const uint8_t *bytes, size_t count);

/// One text chunk: `key` (1-79 Latin-1 bytes, NUL-terminated), `text` (`length` bytes, no NUL) as UTF-8 in an
/// uncompressed iTXt chunk when `international` is non-zero, else as Latin-1 bytes in a tEXt chunk.
typedef struct {
    const char *key;
    const char *text;
    size_t length;
    int international;
} wpng_text;

/// Encodes an 8-bit RGB image row by row, handing bytes to `write` as they are produced; the `text_count`
/// chunks of `texts` go before the image data (so a streamed file shows them first).
/// `level` is the zlib compression level (0-9). Returns 0 on success; on failure non-zero with a
/// message in `error` (libpng reports errors by longjmp, which this C shim catches so Swift never sees it).
int wpng_encode_rgb8(const uint8_t *rgb, int width, int height, size_t row_stride, int level,
                     const wpng_text *texts, int text_count,
                     wpng_write_fn write, void *context, char *error, size_t error_size);

/// Receives one text chunk (tEXt, zTXt or iTXt): its keyword, and its text as libpng gives it (Latin-1
/// for tEXt/zTXt, UTF-8 for iTXt, which `international` tells).
typedef void (*wpng_text_fn)(void *context, const char *key, const char *text, size_t length, int international);

/// Reads a whole PNG held in memory with libpng and calls `fn` for each of its text chunks, in file order.
/// Returns 0 on success, non-zero with a message in `error`.
int wpng_read_text(const uint8_t *png, size_t size, wpng_text_fn fn, void *context, char *error, size_t error_size);

/// Decodes a PNG held in memory to 8-bit RGB through libpng's simplified API (which reports errors
/// without longjmp). On success returns 0, sets width and height, and `*rgb` to a malloc'd buffer the
/// caller frees with `wpng_free`.
int wpng_decode_rgb8(const uint8_t *png, size_t size, uint8_t **rgb, int *width, int *height, char *error,
                     size_t error_size);

/// Frees a buffer from `wpng_decode_rgb8`.
void wpng_free(void *p);

#endif
