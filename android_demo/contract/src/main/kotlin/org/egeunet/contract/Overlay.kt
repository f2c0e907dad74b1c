package org.egeunet.contract

/**
 * `egeunet.predict.overlay`: a translucent lesion fill plus a contour (the mask minus its
 * 5x5 erosion, i.e. up to 2 pixels wide inside the lesion's edge).
 */
object Overlay {
    const val ALPHA = 0.35
    val FILL_RGB = intArrayOf(255, 64, 32)
    val CONTOUR_RGB = intArrayOf(255, 255, 0)

    fun draw(image: RgbImage, mask: BooleanArray): RgbImage {
        val w = image.width
        val h = image.height
        require(mask.size == w * h) { "mask has ${mask.size} pixels, the ${w}x$h image ${w * h}" }
        val eroded = erode(mask, w, h, 2)
        // float32 arithmetic, as NumPy: (1 - alpha) * pixel + alpha * colour, rounded half to even.
        val keep = (1.0 - ALPHA).toFloat()
        val fill = FloatArray(3) { (ALPHA.toFloat() * FILL_RGB[it].toFloat()) }
        val out = image.pixels.copyOf()
        for (i in mask.indices) {
            if (!mask[i]) continue
            for (c in 0 until 3) {
                val v = if (!eroded[i]) CONTOUR_RGB[c]
                        else Math.rint((keep * (out[3 * i + c].toInt() and 0xFF).toFloat() + fill[c]).toDouble()).toInt()
                out[3 * i + c] = v.toByte()
            }
        }
        return RgbImage(w, h, out)
    }

    /** Pillow's `MinFilter(2 * r + 1)` on a binary mask: edge pixels are repeated outwards. */
    fun erode(mask: BooleanArray, w: Int, h: Int, r: Int): BooleanArray {
        val rows = BooleanArray(mask.size) // min over the row window, then over the column window
        for (y in 0 until h) for (x in 0 until w) {
            var all = true
            for (dx in -r..r) {
                val xx = Math.min(Math.max(x + dx, 0), w - 1)
                if (!mask[y * w + xx]) { all = false; break }
            }
            rows[y * w + x] = all
        }
        val out = BooleanArray(mask.size)
        for (y in 0 until h) for (x in 0 until w) {
            var all = true
            for (dy in -r..r) {
                val yy = Math.min(Math.max(y + dy, 0), h - 1)
                if (!rows[yy * w + x]) { all = false; break }
            }
            out[y * w + x] = all
        }
        return out
    }
}
