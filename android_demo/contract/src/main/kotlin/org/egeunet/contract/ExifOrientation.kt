package org.egeunet.contract

/**
 * EXIF orientation (tag 0x0112, values 1..8) applied to decoded pixels, as Python's
 * `ImageOps.exif_transpose` does. Android's `BitmapFactory` ignores the tag: read it with
 * `androidx.exifinterface.media.ExifInterface` and pass it here, or a phone photo reaches
 * the model rotated (and the mask comes back rotated).
 */
object ExifOrientation {
    fun apply(image: RgbImage, orientation: Int): RgbImage {
        if (orientation !in 2..8) return image // 1 = upright; 0 / unknown values: as Pillow, nothing
        val w = image.width
        val h = image.height
        val swap = orientation >= 5
        val ow = if (swap) h else w
        val oh = if (swap) w else h
        val out = ByteArray(image.pixels.size)
        for (y in 0 until oh) for (x in 0 until ow) {
            // (sx, sy): the source pixel shown at (x, y) after the transform
            val sx: Int
            val sy: Int
            when (orientation) {
                2 -> { sx = w - 1 - x; sy = y }          // mirror left-right
                3 -> { sx = w - 1 - x; sy = h - 1 - y }  // rotate 180
                4 -> { sx = x; sy = h - 1 - y }          // mirror top-bottom
                5 -> { sx = y; sy = x }                  // transpose
                6 -> { sx = y; sy = h - 1 - x }          // rotate 90 clockwise
                7 -> { sx = w - 1 - y; sy = h - 1 - x }  // transverse
                else -> { sx = w - 1 - y; sy = x }       // 8: rotate 90 counter-clockwise
            }
            System.arraycopy(image.pixels, (sy * w + sx) * 3, out, (y * ow + x) * 3, 3)
        }
        return RgbImage(ow, oh, out)
    }
}
