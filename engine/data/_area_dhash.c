/* The 64-bit difference hash of a grey image: OpenCV's INTER_AREA resize to 9x8, then each pixel compared with
 * its right neighbour.
 *
 * Why in C: on a small image (64 px) the resize costs a seventh of the decode, and OpenCV's general area resize
 * is scalar code with a chain of dependent additions per output pixel. The hash must keep its exact bits (cached
 * results and reported near duplicates depend on them), so this reproduces OpenCV's arithmetic step by step: the
 * same float32 taps, the same order of additions, the same rounding; only independent rows run side by side. The
 * Python side (engine/data/image_hash.py) checks it against cv2 once per process and uses cv2 where they differ or
 * where this returns None (shapes OpenCV resizes by another path).
 *
 * Build with -ffp-contract=off: a fused multiply-add rounds once where OpenCV rounds twice.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define OUT_W 9
#define OUT_H 8
#define LANES 8
#define STACK_SIDE 256 /* images up to this many pixels a side need no heap */

typedef struct {
    int src, dst;
    float alpha;
} Tap;

/* OpenCV's cvCeil / cvFloor of a double */
static int ceil_int(double v) {
    int i = (int)v;
    return i + (i < v);
}

static int floor_int(double v) {
    int i = (int)v;
    return i - (i > v);
}

/* The area taps of one axis (OpenCV's computeResizeAreaTab, one channel): for each output cell, the source
 * pixels it covers and the share of the cell each covers, in source order. At most 2 * ssize taps. */
static int area_taps(int ssize, int dsize, double scale, Tap *tab) {
    int k = 0;
    for (int d = 0; d < dsize; d++) {
        double f1 = d * scale, f2 = f1 + scale;
        double cell = scale < ssize - f1 ? scale : ssize - f1;
        int s1 = ceil_int(f1), s2 = floor_int(f2);
        if (s2 > ssize - 1) s2 = ssize - 1;
        if (s1 > s2) s1 = s2;
        if (s1 - f1 > 1e-3) {
            tab[k].dst = d;
            tab[k].src = s1 - 1;
            tab[k++].alpha = (float)((s1 - f1) / cell);
        }
        for (int s = s1; s < s2; s++) {
            tab[k].dst = d;
            tab[k].src = s;
            tab[k++].alpha = (float)(1.0 / cell);
        }
        if (f2 - s2 > 1e-3) {
            double w = f2 - s2;
            if (w > 1.0) w = 1.0;
            if (w > cell) w = cell;
            tab[k].dst = d;
            tab[k].src = s2;
            tab[k++].alpha = (float)(w / cell);
        }
    }
    return k;
}

/* OpenCV's saturate_cast<uchar>(float): round half to even, then clamp */
static uint8_t to_u8(float v) {
    long r = lrintf(v);
    return (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
}

/* OpenCV's round(x) as an int (saturate_cast<int>(double)): half to even */
static int round_int(double v) { return (int)lrint(v); }

/* The horizontal pass of every source row: `cells[y * OUT_W + d]` is row y's sum over the taps of cell d.
 *
 * Rows go through in blocks of LANES, side by side in `block` (pixel x of the block's row r at x * LANES + r), so
 * each tap is one multiply-add over all the block's rows: every lane still adds its own row's taps in OpenCV's
 * order, so the sums are the same bits, without a chain of dependent additions per row. */
static void row_cells(const uint8_t *data, Py_ssize_t h, Py_ssize_t w, Py_ssize_t s0, Py_ssize_t s1,
                      const Tap *xtab, int nx, float *block, float *cells) {
    for (Py_ssize_t y0 = 0; y0 < h; y0 += LANES) {
        int n = h - y0 < LANES ? (int)(h - y0) : LANES;
        for (int r = 0; r < LANES; r++) {
            float *out = block + r;
            if (r >= n) { /* past the last row: lanes summed but never stored, zero so they stay plain numbers */
                for (Py_ssize_t x = 0; x < w; x++) out[x * LANES] = 0.f;
                continue;
            }
            const uint8_t *p = data + (y0 + r) * s0;
            if (s1 == 1) {
                for (Py_ssize_t x = 0; x < w; x++) out[x * LANES] = (float)p[x];
            } else {
                for (Py_ssize_t x = 0; x < w; x++) out[x * LANES] = (float)p[x * s1];
            }
        }
        for (int d = 0, k = 0; d < OUT_W; d++) {
            float acc[LANES] = {0}; /* the taps of a cell are consecutive: summed from 0, tap by tap */
            for (; k < nx && xtab[k].dst == d; k++) {
                const float *g = block + xtab[k].src * LANES;
                float alpha = xtab[k].alpha;
                for (int r = 0; r < LANES; r++) acc[r] += g[r] * alpha;
            }
            for (int r = 0; r < n; r++) cells[(y0 + r) * OUT_W + d] = acc[r];
        }
    }
}

static uint64_t hash_of(const uint8_t *data, Py_ssize_t h, Py_ssize_t w, Py_ssize_t s0, Py_ssize_t s1,
                        double scale_x, double scale_y, Tap *xtab, Tap *ytab, float *block,
                        float *cells) {
    int nx = area_taps((int)w, OUT_W, scale_x, xtab);
    int ny = area_taps((int)h, OUT_H, scale_y, ytab);
    row_cells(data, h, w, s0, s1, xtab, nx, block, cells);
    /* the vertical pass, as OpenCV runs it: a row's cells weighted into its output row's sums, each output row
     * stored (rounded) when the next begins */
    float sum[OUT_W] = {0};
    uint8_t thumb[OUT_H][OUT_W];
    int prev_dy = ytab[0].dst;
    for (int j = 0; j < ny; j++) {
        const float *row = cells + ytab[j].src * OUT_W;
        float beta = ytab[j].alpha;
        if (ytab[j].dst != prev_dy) {
            for (int d = 0; d < OUT_W; d++) {
                thumb[prev_dy][d] = to_u8(sum[d]);
                sum[d] = beta * row[d];
            }
            prev_dy = ytab[j].dst;
        } else {
            for (int d = 0; d < OUT_W; d++) sum[d] += beta * row[d];
        }
    }
    for (int d = 0; d < OUT_W; d++) thumb[prev_dy][d] = to_u8(sum[d]);
    uint64_t hash = 0;
    for (int y = 0; y < OUT_H; y++)
        for (int x = 0; x < OUT_W - 1; x++) hash = (hash << 1) | (thumb[y][x + 1] > thumb[y][x]);
    return hash;
}

static PyObject *dhash(PyObject *Py_UNUSED(module), PyObject *image) {
    Py_buffer v;
    if (PyObject_GetBuffer(image, &v, PyBUF_RECORDS_RO) < 0) return NULL;
    PyObject *result = NULL;
    int byte_format = v.format == NULL || strcmp(v.format, "B") == 0;
    if (v.ndim != 2 || v.itemsize != 1 || !byte_format || v.shape[0] <= 0 ||
        v.shape[1] <= 0 || v.shape[0] > INT32_MAX / 2 || v.shape[1] > INT32_MAX / 2) {
        result = Py_None; /* not a 2-D uint8 image: the caller's path */
        Py_INCREF(result);
        goto done;
    }
    Py_ssize_t h = v.shape[0], w = v.shape[1];
    double scale_x = 1.0 / ((double)OUT_W / (double)w), scale_y = 1.0 / ((double)OUT_H / (double)h);
    int area_fast = fabs(scale_x - round_int(scale_x)) < DBL_EPSILON && fabs(scale_y - round_int(scale_y)) < DBL_EPSILON;
    if ((h == OUT_H && w == OUT_W) || scale_x < 1 || scale_y < 1 || area_fast) {
        result = Py_None; /* a copy, an enlargement or a whole-block average: OpenCV takes other paths */
        Py_INCREF(result);
        goto done;
    }
    Tap xstack[2 * STACK_SIDE], ystack[2 * STACK_SIDE];
    float block_stack[STACK_SIDE * LANES], cells_stack[STACK_SIDE * OUT_W];
    Tap *xtab = xstack, *ytab = ystack;
    float *block = block_stack, *cells = cells_stack;
    void *heap = NULL;
    if (w > STACK_SIDE || h > STACK_SIDE) {
        heap = malloc(sizeof(Tap) * 2 * (size_t)(w + h) + sizeof(float) * ((size_t)w * LANES + (size_t)h * OUT_W));
        if (heap == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        xtab = (Tap *)heap;
        ytab = xtab + 2 * w;
        block = (float *)(ytab + 2 * h);
        cells = block + w * LANES;
    }
    uint64_t hash;
    Py_BEGIN_ALLOW_THREADS
    hash = hash_of((const uint8_t *)v.buf, h, w, v.strides[0], v.strides[1], scale_x, scale_y, xtab,
                   ytab, block, cells);
    Py_END_ALLOW_THREADS
    free(heap);
    result = PyLong_FromUnsignedLongLong(hash);
done:
    PyBuffer_Release(&v);
    return result;
}

static PyMethodDef methods[] = {
    {"dhash", dhash, METH_O,
     "dhash(grey) -> int | None: the difference hash of a (h, w) uint8 image, through the 9x8 thumbnail "
     "cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA) gives; None for shapes cv2 resizes by another path."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_area_dhash", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__area_dhash(void) { return PyModule_Create(&module); }
