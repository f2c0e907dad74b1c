package org.egeunet.contract

/** An RGB image, 8 bits per channel, rows top to bottom, pixels interleaved R, G, B. */
class RgbImage(val width: Int, val height: Int, val pixels: ByteArray) {
    init {
        require(width > 0 && height > 0) { "image size must be positive, got ${width}x$height" }
        require(pixels.size == width * height * 3) {
            "a ${width}x$height RGB image needs ${width * height * 3} bytes, got ${pixels.size}"
        }
    }

    /** Channel [c] (0 = R) of pixel ([x], [y]) as 0..255. */
    fun get(x: Int, y: Int, c: Int): Int = pixels[(y * width + x) * 3 + c].toInt() and 0xFF

    companion object {
        /** From Android's / Java's packed ARGB ints (`Bitmap.getPixels`); alpha is dropped. */
        fun fromArgb(width: Int, height: Int, argb: IntArray): RgbImage {
            require(argb.size == width * height) { "expected ${width * height} ARGB pixels, got ${argb.size}" }
            val out = ByteArray(width * height * 3)
            for (i in argb.indices) {
                val p = argb[i]
                out[3 * i] = (p shr 16).toByte()
                out[3 * i + 1] = (p shr 8).toByte()
                out[3 * i + 2] = p.toByte()
            }
            return RgbImage(width, height, out)
        }
    }

    /** Packed opaque ARGB ints, for `Bitmap.createBitmap(IntArray, ...)`. */
    fun toArgb(): IntArray = IntArray(width * height) { i ->
        (0xFF shl 24) or (get3(i, 0) shl 16) or (get3(i, 1) shl 8) or get3(i, 2)
    }

    private fun get3(i: Int, c: Int): Int = pixels[3 * i + c].toInt() and 0xFF
}
