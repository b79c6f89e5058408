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
                     const wpng_text *texts, int text_count,
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
    if (text_count > 0) {
        png_textp chunks = calloc((size_t)text_count, sizeof(png_text));
        if (!chunks) png_error(png, "out of memory for the text chunks");
        for (int i = 0; i < text_count; i++) {
            chunks[i].compression = texts[i].international ? PNG_ITXT_COMPRESSION_NONE : PNG_TEXT_COMPRESSION_NONE;
            chunks[i].key = (png_charp)texts[i].key;
            chunks[i].text = (png_charp)texts[i].text;
            chunks[i].text_length = texts[i].international ? 0 : texts[i].length;
            chunks[i].itxt_length = texts[i].international ? texts[i].length : 0;
            chunks[i].lang = NULL;
            chunks[i].lang_key = NULL;
        }
        // png_set_text copies the chunks into `info`; free ours before anything can longjmp again.
        png_set_text(png, info, chunks, text_count);
        free(chunks);
    }
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

struct wpng_reader {
    const uint8_t *data;
    size_t size, offset;
    char *error;
    size_t error_size;
};

static void on_read(png_structp png, png_bytep out, size_t length) {
    struct wpng_reader *r = (struct wpng_reader *)png_get_io_ptr(png);
    if (length > r->size - r->offset) png_error(png, "the file ends early");
    memcpy(out, r->data + r->offset, length);
    r->offset += length;
}

static void on_read_error(png_structp png, png_const_charp message) {
    struct wpng_reader *r = (struct wpng_reader *)png_get_error_ptr(png);
    if (r->error && r->error_size) snprintf(r->error, r->error_size, "libpng: %s", message);
    png_longjmp(png, 1);
}

int wpng_read_text(const uint8_t *data, size_t size, wpng_text_fn fn, void *context, char *error, size_t error_size) {
    // Deliberate parallel of wpng_encode_rgb8's setup: libpng's create-struct and error boilerplate, with the
    // read struct's own create and destroy calls.
    struct wpng_reader r = {data, size, 0, error, error_size};
    if (error && error_size) error[0] = 0;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &r, on_read_error, on_warning);
    if (!png) {
        if (error && error_size) snprintf(error, error_size, "libpng: cannot create a read struct");
        return 1;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        if (error && error_size) snprintf(error, error_size, "libpng: cannot create an info struct");
        return 1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        return 1;
    }
    png_set_read_fn(png, &r, on_read);
    // Every chunk, before and after the image data, ends up in `info`.
    png_read_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    png_textp text = NULL;
    int count = png_get_text(png, info, &text, NULL);
    for (int i = 0; i < count; i++) {
        int international = text[i].compression == PNG_ITXT_COMPRESSION_NONE || text[i].compression == PNG_ITXT_COMPRESSION_zTXt;
        size_t length = international ? text[i].itxt_length : text[i].text_length;
        fn(context, text[i].key, text[i].text ? text[i].text : "", length, international);
    }
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}

void wpng_free(void *p) { free(p); }
