#ifndef FT_IMAGE_H
#define FT_IMAGE_H
#include <stddef.h>
#include <stdint.h>

/// Encodes 8-bit RGB (row-major, width*height*3 bytes) as PNG. On success returns 0 and sets
/// *out (free with ft_free) and *out_len; on failure returns non-zero and writes a message to err.
int ft_png_encode_rgb(const uint8_t *rgb, int width, int height,
                      uint8_t **out, size_t *out_len, char *err, size_t err_len);

/// Decodes a PNG from memory into 8-bit RGB. *rgb is allocated (free with ft_free).
int ft_png_decode_rgb(const uint8_t *data, size_t len, uint8_t **rgb, int *width, int *height,
                      char *err, size_t err_len);

/// Decodes a PNG of any colour type and bit depth (grey, palette, RGB, with or without alpha,
/// 16-bit) from memory into 8-bit RGBA (opaque images get alpha 255). Images of more than
/// `max_pixels` pixels are refused before their pixels are allocated.
int ft_png_decode_rgba(const uint8_t *data, size_t len, size_t max_pixels, uint8_t **rgba, int *width, int *height,
                       char *err, size_t err_len);

/// Decodes a JPEG (grey or colour) from memory into 8-bit RGB; images of more than
/// `max_pixels` pixels are refused before their pixels are allocated.
int ft_jpeg_decode_rgb(const uint8_t *data, size_t len, size_t max_pixels, uint8_t **rgb, int *width, int *height,
                       char *err, size_t err_len);

/// Encodes 8-bit RGB as baseline JPEG at `quality` (1...100). libjpeg errors come back as a
/// non-zero return and a message, never as exit().
int ft_jpeg_encode_rgb(const uint8_t *rgb, int width, int height, int quality,
                       uint8_t **out, size_t *out_len, char *err, size_t err_len);

/// zlib's CRC-32 over a buffer, continuing from `crc` (start with 0).
uint32_t ft_crc32(uint32_t crc, const uint8_t *data, size_t len);

void ft_free(void *p);
#endif
