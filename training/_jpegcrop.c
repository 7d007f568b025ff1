/* The rows and columns of one box of a baseline/progressive JPEG, decoded with libjpeg(-turbo)'s partial
 * decode: jpeg_crop_scanline (only the iMCU columns around the box) and jpeg_skip_scanlines (no IDCT or
 * colour conversion above the box); decoding stops after the box's last row. Built on first use by
 * training/jpeg_native.py against the system libjpeg-turbo and called through ctypes.
 *
 * Pixel-identical to decoding the whole frame and slicing it: fancy (smooth) chroma upsampling reads the
 * chroma samples next to each output pixel, so the box is widened by one iMCU on each side (clamped to the
 * image) and the rows from one iMCU row above it are decoded, then dropped.
 *
 * Returns 0, or -1 (corrupt data; `message` holds libjpeg's text) or -2 (box outside the image). */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>

struct crop_error {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
};

static void crop_error_exit(j_common_ptr cinfo) { longjmp(((struct crop_error *)cinfo->err)->jump, 1); }
static void crop_emit_message(j_common_ptr cinfo, int level) { (void)cinfo; (void)level; }

int flowprep_decode_crop(const unsigned char *data, unsigned long size, int gray, int y0, int x0, int h, int w,
                         unsigned char *out, char *message, int message_len)
{
    struct jpeg_decompress_struct cinfo;
    struct crop_error err;
    unsigned char *volatile line = NULL;
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = crop_error_exit;
    err.pub.emit_message = crop_emit_message;  /* warnings (e.g. a truncated scan) are not errors */
    if (setjmp(err.jump)) {
        char text[JMSG_LENGTH_MAX];
        (*cinfo.err->format_message)((j_common_ptr)&cinfo, text);
        snprintf(message, message_len, "%s", text);
        jpeg_destroy_decompress(&cinfo);
        free(line);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, size);
    jpeg_read_header(&cinfo, TRUE);
    cinfo.out_color_space = gray ? JCS_GRAYSCALE : JCS_RGB;
    if (y0 < 0 || x0 < 0 || h < 1 || w < 1 || y0 + h > (int)cinfo.image_height || x0 + w > (int)cinfo.image_width) {
        snprintf(message, message_len, "box outside the %ux%u image", cinfo.image_width, cinfo.image_height);
        jpeg_destroy_decompress(&cinfo);
        return -2;
    }
    jpeg_start_decompress(&cinfo);
    /* One component has no chroma to upsample: the box alone is exact. */
    int smooth = cinfo.num_components > 1;
    int hmargin = smooth ? cinfo.max_h_samp_factor * DCTSIZE : 0, vmargin = cinfo.max_v_samp_factor * DCTSIZE;
    int cx0 = x0 - hmargin < 0 ? 0 : x0 - hmargin;
    int cx1 = x0 + w + hmargin > (int)cinfo.output_width ? (int)cinfo.output_width : x0 + w + hmargin;
    JDIMENSION xoff = (JDIMENSION)cx0, cw = (JDIMENSION)(cx1 - cx0);
    jpeg_crop_scanline(&cinfo, &xoff, &cw);  /* widens to iMCU boundaries; output_width becomes cw */
    int channels = cinfo.output_components;
    size_t stride = (size_t)cinfo.output_width * channels;
    enum { BATCH = 16 };  /* rows per jpeg_read_scanlines call: an iMCU row at most, one call each */
    line = malloc(stride * BATCH);
    if (line == NULL) {
        snprintf(message, message_len, "out of memory");
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    int first = smooth ? (y0 - vmargin < 0 ? 0 : (y0 - vmargin) / vmargin * vmargin) : y0;
    if (first > 0)
        jpeg_skip_scanlines(&cinfo, (JDIMENSION)first);
    JSAMPROW rows[BATCH];
    for (int i = 0; i < BATCH; i++) rows[i] = line + (size_t)i * stride;
    for (int r = first; r < y0 + h;) {
        int want = y0 + h - r < BATCH ? y0 + h - r : BATCH;
        int got = (int)jpeg_read_scanlines(&cinfo, rows, (JDIMENSION)want);
        for (int i = 0; i < got; i++, r++)
            if (r >= y0)
                memcpy(out + (size_t)(r - y0) * w * channels, rows[i] + (size_t)(x0 - (int)xoff) * channels,
                       (size_t)w * channels);
        if (got == 0) {  /* libjpeg pads a truncated scan, so never; but never loop or leave rows unwritten */
            snprintf(message, message_len, "no rows decoded at row %d", r);
            jpeg_destroy_decompress(&cinfo);
            free(line);
            return -1;
        }
    }
    jpeg_abort_decompress(&cinfo);  /* the rows below the box are never decoded */
    jpeg_destroy_decompress(&cinfo);
    free(line);
    return 0;
}
