// Thin C wrappers over libpng's simplified API, libjpeg (with a setjmp error manager, since
// libjpeg's default handler calls exit() and a longjmp must not cross Swift frames) and zlib.
#include "ft_image.h"
#include <png.h>
#include <jpeglib.h>
#include <zlib.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void set_err(char *err, size_t err_len, const char *msg) {
    if (err && err_len) { snprintf(err, err_len, "%s", msg); }
}

int ft_png_encode_rgb(const uint8_t *rgb, int width, int height,
                      uint8_t **out, size_t *out_len, char *err, size_t err_len) {
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = (png_uint_32)width;
    image.height = (png_uint_32)height;
    image.format = PNG_FORMAT_RGB;
    png_alloc_size_t size = 0;
    if (!png_image_write_to_memory(&image, NULL, &size, 0, rgb, 0, NULL)) {
        set_err(err, err_len, image.message); png_image_free(&image); return 1;
    }
    uint8_t *buf = malloc(size);
    if (!buf) { set_err(err, err_len, "out of memory"); return 1; }
    if (!png_image_write_to_memory(&image, buf, &size, 0, rgb, 0, NULL)) {
        set_err(err, err_len, image.message); free(buf); png_image_free(&image); return 1;
    }
    *out = buf; *out_len = size;
    return 0;
}

// Decodes into 8-bit `format` (PNG_FORMAT_RGB or PNG_FORMAT_RGBA), refusing more than max_pixels pixels.
static int png_decode(const uint8_t *data, size_t len, size_t max_pixels, png_uint_32 format,
                      uint8_t **out, int *width, int *height, char *err, size_t err_len) {
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&image, data, len)) {
        set_err(err, err_len, image.message); png_image_free(&image); return 1;
    }
    if (image.width == 0 || image.height == 0 || (size_t)image.width * (size_t)image.height > max_pixels) {
        char msg[160];
        snprintf(msg, sizeof msg, "%ux%u pixels, more than the %zu an image may have", image.width, image.height, max_pixels);
        set_err(err, err_len, msg); png_image_free(&image); return 1;
    }
    image.format = format;
    size_t size = PNG_IMAGE_SIZE(image);
    uint8_t *buf = malloc(size);
    if (!buf) { set_err(err, err_len, "out of memory"); png_image_free(&image); return 1; }
    if (!png_image_finish_read(&image, NULL, buf, 0, NULL)) {
        set_err(err, err_len, image.message); free(buf); png_image_free(&image); return 1;
    }
    *out = buf; *width = (int)image.width; *height = (int)image.height;
    return 0;
}

int ft_png_decode_rgb(const uint8_t *data, size_t len, uint8_t **rgb, int *width, int *height,
                      char *err, size_t err_len) {
    return png_decode(data, len, SIZE_MAX, PNG_FORMAT_RGB, rgb, width, height, err, err_len);
}

int ft_png_decode_rgba(const uint8_t *data, size_t len, size_t max_pixels, uint8_t **rgba, int *width, int *height,
                       char *err, size_t err_len) {
    return png_decode(data, len, max_pixels, PNG_FORMAT_RGBA, rgba, width, height, err, err_len);
}

struct ft_jpeg_error {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

static void ft_jpeg_error_exit(j_common_ptr cinfo) {
    struct ft_jpeg_error *e = (struct ft_jpeg_error *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->message);
    longjmp(e->jump, 1);
}

// A warning of corrupt data (a truncated file, a bad marker: libjpeg goes on with grey) is an
// error when decoding: a damaged image is named, not half-read.
static void ft_jpeg_warning_is_error(j_common_ptr cinfo, int level) {
    if (level < 0) { ft_jpeg_error_exit(cinfo); }
}

int ft_jpeg_encode_rgb(const uint8_t *rgb, int width, int height, int quality,
                       uint8_t **out, size_t *out_len, char *err, size_t err_len) {
    struct jpeg_compress_struct cinfo;
    struct ft_jpeg_error jerr;
    unsigned char *mem = NULL;
    unsigned long mem_len = 0;
    cinfo.err = jpeg_std_error(&jerr.mgr);
    jerr.mgr.error_exit = ft_jpeg_error_exit;
    jerr.message[0] = 0;
    if (setjmp(jerr.jump)) {
        set_err(err, err_len, jerr.message);
        jpeg_destroy_compress(&cinfo);
        free(mem);
        return 1;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &mem, &mem_len);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)cinfo.next_scanline * (size_t)width * 3);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *out = mem; *out_len = (size_t)mem_len;
    return 0;
}

int ft_jpeg_decode_rgb(const uint8_t *data, size_t len, size_t max_pixels, uint8_t **rgb, int *width, int *height,
                       char *err, size_t err_len) {
    struct jpeg_decompress_struct cinfo;
    struct ft_jpeg_error jerr;
    uint8_t *volatile buf = NULL;
    cinfo.err = jpeg_std_error(&jerr.mgr);
    jerr.mgr.error_exit = ft_jpeg_error_exit;
    jerr.mgr.emit_message = ft_jpeg_warning_is_error;
    jerr.message[0] = 0;
    if (setjmp(jerr.jump)) {
        set_err(err, err_len, jerr.message);
        jpeg_destroy_decompress(&cinfo);
        free(buf);
        return 1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        set_err(err, err_len, "a CMYK JPEG (only grey and colour JPEGs are read)");
        jpeg_destroy_decompress(&cinfo); return 1;
    }
    if (cinfo.image_width == 0 || cinfo.image_height == 0 || (size_t)cinfo.image_width * (size_t)cinfo.image_height > max_pixels) {
        char msg[160];
        snprintf(msg, sizeof msg, "%ux%u pixels, more than the %zu an image may have", cinfo.image_width, cinfo.image_height, max_pixels);
        set_err(err, err_len, msg); jpeg_destroy_decompress(&cinfo); return 1;
    }
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    size_t w = cinfo.output_width, h = cinfo.output_height;
    buf = malloc(w * h * 3);
    if (!buf) { set_err(err, err_len, "out of memory"); jpeg_destroy_decompress(&cinfo); return 1; }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = (JSAMPROW)(buf + (size_t)cinfo.output_scanline * w * 3);
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    *rgb = buf; *width = (int)w; *height = (int)h;
    return 0;
}

uint32_t ft_crc32(uint32_t crc, const uint8_t *data, size_t len) {
    // zlib takes uInt lengths: feed large buffers in chunks.
    uLong c = crc;
    while (len > 0) {
        uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
        c = crc32(c, data, n);
        data += n; len -= n;
    }
    return (uint32_t)c;
}

void ft_free(void *p) { free(p); }
