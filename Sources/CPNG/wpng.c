// A setjmp boundary around libpng's writer: libpng signals errors with longjmp, which must not cross
// Swift frames, so the whole encode runs inside this function.
#include "wpng.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct wpng_state {
    wpng_write_fn write;
    void *context;
    char *error;
    size_t error_size;
    int aborted;
};

static void on_error(png_structp png, png_const_charp message) {
    struct wpng_state *s = (struct wpng_state *)png_get_error_ptr(png);
    if (s->error && s->error_size) snprintf(s->error, s->error_size, "libpng: %s", message);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp message) { (void)png; (void)message; }

static void on_write(png_structp png, png_bytep data, size_t length) {
    struct wpng_state *s = (struct wpng_state *)png_get_io_ptr(png);
    if (s->write(s->context, data, length) != 0) {
        s->aborted = 1;
        png_error(png, "the output sink stopped accepting bytes");
    }
}

static void on_flush(png_structp png) { (void)png; }

int wpng_encode_rgb8(const uint8_t *rgb, int width, int height, size_t row_stride, int level,
                     wpng_write_fn write, void *context, char *error, size_t error_size) {
    struct wpng_state s = {write, context, error, error_size, 0};
    if (error && error_size) error[0] = 0;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &s, on_error, on_warning);
    if (!png) {
        if (error && error_size) snprintf(error, error_size, "libpng: cannot create a write struct");
        return 1;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        if (error && error_size) snprintf(error, error_size, "libpng: cannot create an info struct");
        return 1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return s.aborted ? 2 : 1;
    }
    png_set_write_fn(png, &s, on_write, on_flush);
    png_set_compression_level(png, level);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < height; y++) png_write_row(png, (png_const_bytep)(rgb + (size_t)y * row_stride));
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return 0;
}

int wpng_decode_rgb8(const uint8_t *data, size_t size, uint8_t **rgb, int *width, int *height, char *error,
                     size_t error_size) {
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    *rgb = NULL;
    if (!png_image_begin_read_from_memory(&image, data, size)) {
        if (error && error_size) snprintf(error, error_size, "libpng: %s", image.message);
        return 1;
    }
    image.format = PNG_FORMAT_RGB;
    uint8_t *buffer = malloc(PNG_IMAGE_SIZE(image));
    if (!buffer) {
        png_image_free(&image);
        if (error && error_size) snprintf(error, error_size, "out of memory");
        return 1;
    }
    if (!png_image_finish_read(&image, NULL, buffer, 0, NULL)) {
        if (error && error_size) snprintf(error, error_size, "libpng: %s", image.message);
        free(buffer);
        return 1;
    }
    *rgb = buffer;
    *width = (int)image.width;
    *height = (int)image.height;
    return 0;
}

void wpng_free(void *p) { free(p); }
