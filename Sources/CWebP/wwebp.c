// libwebp's encoder and decoder, and libwebpmux for the metadata chunks, behind plain functions that
// report errors as text (libwebp itself reports only enum codes).
#include "wwebp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <webp/decode.h>
#include <webp/encode.h>
#include <webp/mux.h>

static const char *encoding_error(WebPEncodingError code) {
    switch (code) {
    case VP8_ENC_ERROR_OUT_OF_MEMORY: return "out of memory";
    case VP8_ENC_ERROR_BITSTREAM_OUT_OF_MEMORY: return "out of memory for the bitstream";
    case VP8_ENC_ERROR_NULL_PARAMETER: return "a NULL parameter";
    case VP8_ENC_ERROR_INVALID_CONFIGURATION: return "an invalid configuration";
    case VP8_ENC_ERROR_BAD_DIMENSION: return "bad dimensions (at most 16383 pixels a side)";
    case VP8_ENC_ERROR_PARTITION0_OVERFLOW: return "partition 0 overflow";
    case VP8_ENC_ERROR_PARTITION_OVERFLOW: return "partition overflow";
    case VP8_ENC_ERROR_BAD_WRITE: return "a failed write";
    case VP8_ENC_ERROR_FILE_TOO_BIG: return "a file too big";
    case VP8_ENC_ERROR_USER_ABORT: return "aborted";
    default: return "an unknown error";
    }
}

int wwebp_encode_rgb8(const uint8_t *rgb, int width, int height, size_t row_stride, float quality, int lossless,
                      const uint8_t *exif, size_t exif_size, const uint8_t *xmp, size_t xmp_size,
                      uint8_t **out, size_t *out_size, char *error, size_t error_size) {
    *out = NULL;
    *out_size = 0;
    if (error && error_size) error[0] = 0;
    WebPConfig config;
    if (!WebPConfigInit(&config)) {
        if (error && error_size) snprintf(error, error_size, "libwebp: version mismatch");
        return 1;
    }
    config.lossless = lossless ? 1 : 0;
    config.quality = quality;
    // Lossless keeps every pixel, including under the (opaque) alpha it never has: `exact` is moot for RGB.
    if (!WebPValidateConfig(&config)) {
        if (error && error_size) snprintf(error, error_size, "libwebp: invalid configuration (quality %g)", quality);
        return 1;
    }
    WebPPicture picture;
    if (!WebPPictureInit(&picture)) {
        if (error && error_size) snprintf(error, error_size, "libwebp: version mismatch");
        return 1;
    }
    picture.width = width;
    picture.height = height;
    picture.use_argb = lossless ? 1 : 0;
    if (!WebPPictureImportRGB(&picture, rgb, (int)row_stride)) {
        if (error && error_size) snprintf(error, error_size, "libwebp: cannot import a %dx%d picture", width, height);
        WebPPictureFree(&picture);
        return 1;
    }
    WebPMemoryWriter writer;
    WebPMemoryWriterInit(&writer);
    picture.writer = WebPMemoryWrite;
    picture.custom_ptr = &writer;
    int ok = WebPEncode(&config, &picture);
    WebPEncodingError code = picture.error_code;
    WebPPictureFree(&picture);
    if (!ok) {
        if (error && error_size) snprintf(error, error_size, "libwebp: encoding failed with %s", encoding_error(code));
        WebPMemoryWriterClear(&writer);
        return 1;
    }
    if (!exif && !xmp) {
        *out = writer.mem;
        *out_size = writer.size;
        return 0;
    }
    WebPMux *mux = WebPMuxNew();
    WebPData image = {writer.mem, writer.size};
    WebPMuxError e = mux ? WebPMuxSetImage(mux, &image, 1) : WEBP_MUX_MEMORY_ERROR;
    if (e == WEBP_MUX_OK && exif) {
        WebPData chunk = {exif, exif_size};
        e = WebPMuxSetChunk(mux, "EXIF", &chunk, 1);
    }
    if (e == WEBP_MUX_OK && xmp) {
        WebPData chunk = {xmp, xmp_size};
        e = WebPMuxSetChunk(mux, "XMP ", &chunk, 1);
    }
    WebPData assembled = {NULL, 0};
    if (e == WEBP_MUX_OK) e = WebPMuxAssemble(mux, &assembled);
    WebPMuxDelete(mux);
    WebPMemoryWriterClear(&writer);
    if (e != WEBP_MUX_OK) {
        if (error && error_size) snprintf(error, error_size, "libwebpmux: adding the metadata chunks failed (error %d)", (int)e);
        WebPDataClear(&assembled);
        return 1;
    }
    *out = (uint8_t *)assembled.bytes;
    *out_size = assembled.size;
    return 0;
}

int wwebp_decode_rgb8(const uint8_t *data, size_t size, uint8_t **rgb, int *width, int *height, char *error,
                      size_t error_size) {
    if (error && error_size) error[0] = 0;
    *rgb = WebPDecodeRGB(data, size, width, height);
    if (!*rgb) {
        if (error && error_size) snprintf(error, error_size, "libwebp: not a WebP file, or a damaged one");
        return 1;
    }
    return 0;
}

int wwebp_get_chunk(const uint8_t *data, size_t size, const char *fourcc, uint8_t **out, size_t *out_size) {
    *out = NULL;
    *out_size = 0;
    WebPData file = {data, size};
    WebPMux *mux = WebPMuxCreate(&file, 0);
    if (!mux) return 2;
    WebPData chunk;
    int status = 1;
    if (WebPMuxGetChunk(mux, fourcc, &chunk) == WEBP_MUX_OK) {
        *out = WebPMalloc(chunk.size ? chunk.size : 1);
        if (*out) {
            memcpy(*out, chunk.bytes, chunk.size);
            *out_size = chunk.size;
            status = 0;
        }
    }
    WebPMuxDelete(mux);
    return status;
}

void wwebp_free(void *p) { WebPFree(p); }
