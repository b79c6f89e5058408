// A setjmp boundary around libjpeg(-turbo): libjpeg's default error handler exits the process, so these
// functions install one that longjmps back here, and the whole encode or decode runs inside them.
#include "wjpeg.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <jerror.h>

#define WJPEG_BUFFER (64 * 1024)

struct wjpeg_error {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    char *message;
    size_t message_size;
};

static void on_error_exit(j_common_ptr cinfo) {
    struct wjpeg_error *e = (struct wjpeg_error *)cinfo->err;
    char text[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, text);
    if (e->message && e->message_size && e->message[0] == 0) snprintf(e->message, e->message_size, "libjpeg: %s", text);
    longjmp(e->jump, 1);
}

static void on_output_message(j_common_ptr cinfo) { (void)cinfo; }

// The error manager both directions install: fatal errors longjmp to `jerr->jump` (set by the caller,
// as setjmp must run in the frame it returns to) with the message in `error`; warnings are dropped.
static struct jpeg_error_mgr *wjpeg_errors(struct wjpeg_error *jerr, char *error, size_t error_size) {
    struct jpeg_error_mgr *base = jpeg_std_error(&jerr->base);
    jerr->base.error_exit = on_error_exit;
    jerr->base.output_message = on_output_message;
    jerr->message = error;
    jerr->message_size = error_size;
    return base;
}

struct wjpeg_destination {
    struct jpeg_destination_mgr base;
    wjpeg_write_fn write;
    void *context;
    JOCTET buffer[WJPEG_BUFFER];
    char *error;
    size_t error_size;
};

static void init_destination(j_compress_ptr cinfo) {
    struct wjpeg_destination *d = (struct wjpeg_destination *)cinfo->dest;
    d->base.next_output_byte = d->buffer;
    d->base.free_in_buffer = WJPEG_BUFFER;
}

static void stop_sink(j_compress_ptr cinfo, struct wjpeg_destination *d) {
    if (d->error && d->error_size) snprintf(d->error, d->error_size, "the output sink stopped accepting bytes");
    ERREXIT(cinfo, JERR_FILE_WRITE);
}

static boolean empty_output_buffer(j_compress_ptr cinfo) {
    struct wjpeg_destination *d = (struct wjpeg_destination *)cinfo->dest;
    // libjpeg asks when the buffer is full: all of it is ready, whatever free_in_buffer says.
    if (d->write(d->context, d->buffer, WJPEG_BUFFER) != 0) stop_sink(cinfo, d);
    d->base.next_output_byte = d->buffer;
    d->base.free_in_buffer = WJPEG_BUFFER;
    return TRUE;
}

static void term_destination(j_compress_ptr cinfo) {
    struct wjpeg_destination *d = (struct wjpeg_destination *)cinfo->dest;
    size_t count = WJPEG_BUFFER - d->base.free_in_buffer;
    if (count > 0 && d->write(d->context, d->buffer, count) != 0) stop_sink(cinfo, d);
}

int wjpeg_encode_rgb8(const uint8_t *rgb, int width, int height, size_t row_stride, int quality, int full_chroma,
                      const wjpeg_segment *segments, int segment_count,
                      wjpeg_write_fn write, void *context, char *error, size_t error_size) {
    struct jpeg_compress_struct cinfo;
    struct wjpeg_error jerr;
    if (error && error_size) error[0] = 0;
    struct wjpeg_destination *dest = malloc(sizeof *dest);
    if (!dest) {
        if (error && error_size) snprintf(error, error_size, "out of memory");
        return 1;
    }
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = wjpeg_errors(&jerr, error, error_size);
    if (setjmp(jerr.jump)) {
        jpeg_destroy_compress(&cinfo);
        free(dest);
        return 1;
    }
    jpeg_create_compress(&cinfo);
    dest->base.init_destination = init_destination;
    dest->base.empty_output_buffer = empty_output_buffer;
    dest->base.term_destination = term_destination;
    dest->write = write;
    dest->context = context;
    dest->error = error;
    dest->error_size = error_size;
    cinfo.dest = &dest->base;
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    if (full_chroma) {
        for (int c = 0; c < 3; c++) {
            cinfo.comp_info[c].h_samp_factor = 1;
            cinfo.comp_info[c].v_samp_factor = 1;
        }
    }
    cinfo.write_JFIF_header = segment_count > 0 ? FALSE : TRUE;
    jpeg_start_compress(&cinfo, TRUE);
    for (int i = 0; i < segment_count; i++) {
        jpeg_write_marker(&cinfo, segments[i].marker, segments[i].data, (unsigned int)segments[i].length);
    }
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)cinfo.next_scanline * row_stride);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    free(dest);
    return 0;
}

int wjpeg_decode_rgb8(const uint8_t *data, size_t size, uint8_t **rgb, int *width, int *height,
                      wjpeg_marker_fn marker_fn, void *context, char *error, size_t error_size) {
    struct jpeg_decompress_struct cinfo;
    struct wjpeg_error jerr;
    // volatile: read after the longjmp of a failed decode.
    uint8_t *volatile buffer = NULL;
    if (error && error_size) error[0] = 0;
    if (rgb) *rgb = NULL;
    // Deliberate parallel of wjpeg_encode_rgb8's setup: libjpeg's error-manager and setjmp boilerplate, with
    // the decompress struct's own destroy call.
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = wjpeg_errors(&jerr, error, error_size);
    if (setjmp(jerr.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(buffer);
        return 1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    for (int m = 0; m < 16; m++) jpeg_save_markers(&cinfo, JPEG_APP0 + m, 0xFFFF);
    jpeg_read_header(&cinfo, TRUE);
    if (marker_fn) {
        for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next) marker_fn(context, m->marker, m->data, m->data_length);
    }
    *width = (int)cinfo.image_width;
    *height = (int)cinfo.image_height;
    if (!rgb) {
        jpeg_destroy_decompress(&cinfo);
        return 0;
    }
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    size_t stride = (size_t)cinfo.output_width * 3;
    buffer = malloc(stride * cinfo.output_height);
    if (!buffer) {
        if (error && error_size) snprintf(error, error_size, "out of memory");
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = buffer + (size_t)cinfo.output_scanline * stride;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    *width = (int)cinfo.output_width;
    *height = (int)cinfo.output_height;
    jpeg_destroy_decompress(&cinfo);
    *rgb = buffer;
    return 0;
}

void wjpeg_free(void *p) { free(p); }
