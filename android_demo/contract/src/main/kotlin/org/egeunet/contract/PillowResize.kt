package org.egeunet.contract

/**
 * Pillow's BILINEAR resize (`Image.resize(size, Image.BILINEAR)`), ported bit-exactly from
 * `src/libImaging/Resample.c` of Pillow 13.0 (the version `constraints.txt` pins): a separable triangle filter whose support widens
 * with the downscale factor (antialiasing), horizontal pass first, then vertical.
 *
 * - 8-bit images ([resizeRgb]) use Pillow's fixed-point path: coefficients scaled by 2^22
 *   and rounded, sums rounded and clipped to 0..255 after *each* pass.
 * - 32-bit float images ([resizeFloat], Pillow mode 'F') use double coefficients and
 *   double sums, stored as float after each pass.
 *
 * A plain "bilinear" (Android's `Bitmap.createScaledBitmap`, OpenCV's INTER_LINEAR, TFLite's
 * RESIZE_BILINEAR) samples 2x2 neighbours and differs from this whenever it shrinks.
 */
object PillowResize {
    private const val PRECISION_BITS = 32 - 8 - 2

    /** Coefficients for one axis: per output index, the first input index, the count, the weights. */
    private class Coeffs(val ksize: Int, val bounds: IntArray, val kk: DoubleArray)

    private fun bilinear(x: Double): Double {
        val a = if (x < 0.0) -x else x
        return if (a < 1.0) 1.0 - a else 0.0
    }

    private fun precompute(inSize: Int, outSize: Int): Coeffs {
        val scale = inSize.toFloat().toDouble() / outSize // box (0, inSize) as floats, as Pillow
        val filterscale = if (scale < 1.0) 1.0 else scale
        val support = 1.0 * filterscale
        val ksize = Math.ceil(support).toInt() * 2 + 1
        val kk = DoubleArray(outSize * ksize)
        val invFilterscale = 1.0 / filterscale
        val bounds = IntArray(outSize * 2)
        for (xx in 0 until outSize) {
            val center = 0.0 + (xx + 0.5) * scale
            var ww = 0.0
                var xmin = (center - support + 0.5).toInt() // C cast: truncates toward zero
            if (xmin < 0) xmin = 0
            var xmax = (center + support + 0.5).toInt()
            if (xmax > inSize) xmax = inSize
            xmax -= xmin
            val k0 = xx * ksize
            for (x in 0 until xmax) {
                val w = bilinear(((x + xmin) - center + 0.5) * invFilterscale)
                kk[k0 + x] = w
                ww += w
            }
            for (x in 0 until xmax) {
                if (ww != 0.0) kk[k0 + x] /= ww
            }
            bounds[xx * 2] = xmin
            bounds[xx * 2 + 1] = xmax
        }
        return Coeffs(ksize, bounds, kk)
    }

    private fun fixedPoint(c: Coeffs): IntArray = IntArray(c.kk.size) { i ->
        val v = c.kk[i]
        if (v < 0) (-0.5 + v * (1 shl PRECISION_BITS)).toInt() else (0.5 + v * (1 shl PRECISION_BITS)).toInt()
    }

    private fun clip8(ss: Int): Int {
        val v = ss shr PRECISION_BITS
        return if (v < 0) 0 else if (v > 255) 255 else v
    }

    /**
     * Pillow 13's pass order: vertical first when the height shrinks by more than twice as many
     * pixels as the width does (a faster horizontal pass); otherwise horizontal first, and then
     * only over the input rows the vertical pass reads. The order changes the 8-bit result
     * (each pass rounds), so it is part of the contract.
     */
    private fun horizontalFirst(inW: Int, inH: Int, outW: Int, outH: Int): Boolean =
        !((inH - outH) > 0 && (inH - outH) > (inW - outW) * 2)

    /** Resize an RGB image to [outW] x [outH] exactly as Pillow does (a copy when the size is unchanged). */
    fun resizeRgb(image: RgbImage, outW: Int, outH: Int): RgbImage {
        require(outW > 0 && outH > 0) { "output size must be positive, got ${outW}x$outH" }
        val inW = image.width
        val inH = image.height
        val needH = outW != inW
        val needV = outH != inH
        if (!needH && !needV) return RgbImage(inW, inH, image.pixels.copyOf())
        val vert = precompute(inH, outH)
        if (needH && horizontalFirst(inW, inH, outW, outH)) {
            // only the input rows the vertical pass reads
            val yFirst = vert.bounds[0]
            val yLast = vert.bounds[outH * 2 - 2] + vert.bounds[outH * 2 - 1]
            val tmp = horizontalRgb(image.pixels, inW, yLast - yFirst, yFirst, precompute(inW, outW), outW)
            if (!needV) return RgbImage(outW, outH, tmp)
            return RgbImage(outW, outH, verticalRgb(tmp, outW, vert, outH, yFirst))
        }
        var px = image.pixels
        if (needV) px = verticalRgb(px, inW, vert, outH, 0)
        if (needH) px = horizontalRgb(px, inW, outH, 0, precompute(inW, outW), outW)
        return RgbImage(outW, outH, px)
    }

    private fun horizontalRgb(src: ByteArray, inW: Int, rows: Int, rowOffset: Int, c: Coeffs, outW: Int): ByteArray {
        val k = fixedPoint(c)
        val out = ByteArray(outW * rows * 3)
        val half = 1 shl (PRECISION_BITS - 1)
        for (yy in 0 until rows) {
            val rowIn = (yy + rowOffset) * inW * 3
            for (xx in 0 until outW) {
                val xmin = c.bounds[xx * 2]
                val xmax = c.bounds[xx * 2 + 1]
                val k0 = xx * c.ksize
                var s0 = half
                var s1 = half
                var s2 = half
                for (x in 0 until xmax) {
                    val p = rowIn + (x + xmin) * 3
                    val kx = k[k0 + x]
                    s0 += (src[p].toInt() and 0xFF) * kx
                    s1 += (src[p + 1].toInt() and 0xFF) * kx
                    s2 += (src[p + 2].toInt() and 0xFF) * kx
                }
                val o = (yy * outW + xx) * 3
                out[o] = clip8(s0).toByte()
                out[o + 1] = clip8(s1).toByte()
                out[o + 2] = clip8(s2).toByte()
            }
        }
        return out
    }

    /** [rowShift]: the first input row held in [src] (bounds index rows of the full input). */
    private fun verticalRgb(src: ByteArray, w: Int, c: Coeffs, outH: Int, rowShift: Int): ByteArray {
        val k = fixedPoint(c)
        val out = ByteArray(w * outH * 3)
        val half = 1 shl (PRECISION_BITS - 1)
        for (yy in 0 until outH) {
            val ymin = c.bounds[yy * 2] - rowShift
            val ymax = c.bounds[yy * 2 + 1]
            val k0 = yy * c.ksize
            for (xx in 0 until w) {
                var s0 = half
                var s1 = half
                var s2 = half
                for (y in 0 until ymax) {
                    val p = ((y + ymin) * w + xx) * 3
                    val ky = k[k0 + y]
                    s0 += (src[p].toInt() and 0xFF) * ky
                    s1 += (src[p + 1].toInt() and 0xFF) * ky
                    s2 += (src[p + 2].toInt() and 0xFF) * ky
                }
                val o = (yy * w + xx) * 3
                out[o] = clip8(s0).toByte()
                out[o + 1] = clip8(s1).toByte()
                out[o + 2] = clip8(s2).toByte()
            }
        }
        return out
    }

    /** Resize a float map ([width] x [height], row-major) as Pillow does for mode 'F'. */
    fun resizeFloat(src: FloatArray, width: Int, height: Int, outW: Int, outH: Int): FloatArray {
        require(width > 0 && height > 0 && outW > 0 && outH > 0) {
            "sizes must be positive, got ${width}x$height -> ${outW}x$outH"
        }
        require(src.size == width * height) { "a ${width}x$height map needs ${width * height} values, got ${src.size}" }
        val needH = outW != width
        val needV = outH != height
        if (!needH && !needV) return src.copyOf()
        val vert = precompute(height, outH)
        if (needH && horizontalFirst(width, height, outW, outH)) {
            val yFirst = vert.bounds[0]
            val yLast = vert.bounds[outH * 2 - 2] + vert.bounds[outH * 2 - 1]
            val tmp = horizontalFloat(src, width, yLast - yFirst, yFirst, precompute(width, outW), outW)
            return if (needV) verticalFloat(tmp, outW, vert, outH, yFirst) else tmp
        }
        var cur = src
        if (needV) cur = verticalFloat(cur, width, vert, outH, 0)
        if (needH) cur = horizontalFloat(cur, width, outH, 0, precompute(width, outW), outW)
        return cur
    }

    private fun horizontalFloat(src: FloatArray, inW: Int, rows: Int, rowOffset: Int, c: Coeffs, outW: Int): FloatArray {
        val out = FloatArray(outW * rows)
        for (yy in 0 until rows) {
            val rowIn = (yy + rowOffset) * inW
            for (xx in 0 until outW) {
                val xmin = c.bounds[xx * 2]
                val xmax = c.bounds[xx * 2 + 1]
                val k0 = xx * c.ksize
                var ss = 0.0 // double sum of float * double, stored as float: as Pillow
                for (x in 0 until xmax) ss += src[rowIn + x + xmin].toDouble() * c.kk[k0 + x]
                out[yy * outW + xx] = ss.toFloat()
            }
        }
        return out
    }

    private fun verticalFloat(src: FloatArray, w: Int, c: Coeffs, outH: Int, rowShift: Int): FloatArray {
        val out = FloatArray(w * outH)
        for (yy in 0 until outH) {
            val ymin = c.bounds[yy * 2] - rowShift
            val ymax = c.bounds[yy * 2 + 1]
            val k0 = yy * c.ksize
            for (xx in 0 until w) {
                var ss = 0.0
                for (y in 0 until ymax) ss += src[(y + ymin) * w + xx].toDouble() * c.kk[k0 + y]
                out[yy * w + xx] = ss.toFloat()
            }
        }
        return out
    }
}
