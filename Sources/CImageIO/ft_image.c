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

int ft_png_decode_rgb(const uint8_t *data, size_t len, uint8_t **rgb, int *width, int *height,
                      char *err, size_t err_len) {
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&image, data, len)) {
        set_err(err, err_len, image.message); png_image_free(&image); return 1;
    }
    image.format = PNG_FORMAT_RGB;
    size_t size = PNG_IMAGE_SIZE(image);
    uint8_t *buf = malloc(size);
    if (!buf) { set_err(err, err_len, "out of memory"); png_image_free(&image); return 1; }
    if (!png_image_finish_read(&image, NULL, buf, 0, NULL)) {
        set_err(err, err_len, image.message); free(buf); png_image_free(&image); return 1;
    }
    *rgb = buf; *width = (int)image.width; *height = (int)image.height;
    return 0;
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
