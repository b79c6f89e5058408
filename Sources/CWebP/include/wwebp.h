#ifndef WWEBP_H
#define WWEBP_H
#include <stddef.h>
#include <stdint.h>

/// Encodes an 8-bit RGB image with libwebp: lossless (VP8L, exact pixels) when `lossless` is non-zero,
/// else lossy VP8 at `quality` 0-100 (`WebPConfig.quality`). `exif` (a TIFF structure, no "Exif\0\0"
/// prefix) and `xmp` (an XMP packet) go into EXIF and "XMP " chunks of an extended (VP8X) file through
/// libwebpmux when given. libwebp produces the file only once the whole image is compressed: on success
/// returns 0 and sets `*out` to a buffer of `*out_size` bytes the caller frees with `wwebp_free`; on failure
/// non-zero with a message in `error`.
int wwebp_encode_rgb8(const uint8_t *rgb, int width, int height, size_t row_stride, float quality, int lossless,
                      const uint8_t *exif, size_t exif_size, const uint8_t *xmp, size_t xmp_size,
                      uint8_t **out, size_t *out_size, char *error, size_t error_size);

/// Decodes a WebP held in memory to 8-bit RGB; on success returns 0, sets width and height and `*rgb`
/// (free with `wwebp_free`).
int wwebp_decode_rgb8(const uint8_t *webp, size_t size, uint8_t **rgb, int *width, int *height, char *error,
                      size_t error_size);

/// Copies the payload of the chunk `fourcc` ("EXIF", "XMP ") of a WebP file into `*out` (free with
/// `wwebp_free`). Returns 0 when found, 1 when the file has no such chunk, 2 when the file is not WebP.
int wwebp_get_chunk(const uint8_t *webp, size_t size, const char *fourcc, uint8_t **out, size_t *out_size);

/// Frees a buffer from these functions.
void wwebp_free(void *p);

#endif
