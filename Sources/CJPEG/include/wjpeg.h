#ifndef WJPEG_H
#define WJPEG_H
#include <stddef.h>
#include <stdint.h>

/// Receives encoded JPEG bytes as libjpeg produces them; returns 0 to continue, non-zero to abort.
typedef int (*wjpeg_write_fn)(void *context, const uint8_t *bytes, size_t count);

/// One application marker to write after SOI (`marker` 0xE0-0xEF: APP0-APP15), at most 65533 bytes of
/// `data` (the segment's identifier, e.g. "Exif\0\0", included).
typedef struct {
    int marker;
    const uint8_t *data;
    size_t length;
} wjpeg_segment;

/// Encodes an 8-bit RGB image with libjpeg(-turbo), baseline, `quality` 1-100 (`jpeg_set_quality`),
/// chroma 4:4:4 when `full_chroma` is non-zero else 4:2:0, handing bytes to `write` in pieces of at most
/// 64 KiB as scanlines are compressed. The JFIF header is left out when segments are given (an Exif APP1
/// must then come first). Returns 0 on success; non-zero with a message in `error` (libjpeg's errors end
/// in a longjmp caught here, never crossing Swift frames).
int wjpeg_encode_rgb8(const uint8_t *rgb, int width, int height, size_t row_stride, int quality, int full_chroma,
                      const wjpeg_segment *segments, int segment_count,
                      wjpeg_write_fn write, void *context, char *error, size_t error_size);

/// Receives one saved marker segment of a decoded file (APP1, APP0... as found), without its length bytes.
typedef void (*wjpeg_marker_fn)(void *context, int marker, const uint8_t *data, size_t length);

/// Decodes a JPEG held in memory to 8-bit RGB. Calls `marker_fn` (if not NULL) for every APP0-APP15 segment.
/// When `rgb` is NULL only the markers are read. On success returns 0, sets width and height, and `*rgb`
/// to a malloc'd buffer the caller frees with `wjpeg_free`.
int wjpeg_decode_rgb8(const uint8_t *jpeg, size_t size, uint8_t **rgb, int *width, int *height,
                      wjpeg_marker_fn marker_fn, void *context, char *error, size_t error_size);

/// Frees a buffer from `wjpeg_decode_rgb8`.
void wjpeg_free(void *p);

#endif
