package org.egeunet.demo

import android.content.ContentResolver
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.net.Uri
import androidx.exifinterface.media.ExifInterface
import org.egeunet.contract.ExifOrientation
import org.egeunet.contract.RgbImage
import java.io.IOException
import java.util.Locale

/**
 * A gallery image as the Python contract decodes it: RGB, EXIF orientation applied, full
 * resolution (decoding at a reduced size would change what the model sees). Differences that
 * remain: JPEG decoders may differ from Pillow's by a level or so per pixel, and Android
 * composites transparent PNG pixels differently from Python's "on black".
 */
object Images {
    /**
     * Java-heap bytes per image pixel while one image is segmented at full resolution: the ARGB
     * ints (4) and RGB bytes (3, twice when EXIF rotates), the probability map resized to the image
     * (4, plus Pillow-style intermediate rows), the mask (1), the overlay (3) and its ARGB ints (4).
     * A rough upper bound, used only to refuse up front what would end in OutOfMemoryError.
     */
    private const val HEAP_BYTES_PER_PIXEL = 24L

    /**
     * Python refuses above 100 MP (`preprocess.MAX_IMAGE_PIXELS`); the app stops at 25 MP because the
     * overlay is shown at full size and Android's canvas throws (on the UI thread) for bitmaps over
     * 100 MB, i.e. 25 MP of ARGB.
     */
    private const val MAX_PIXELS = 25_000_000L

    fun read(resolver: ContentResolver, uri: Uri): RgbImage {
        // Size first, from the header only: a 48 MP photo is a 192 MB bitmap before anything else.
        val bounds = BitmapFactory.Options().apply { inJustDecodeBounds = true }
        resolver.openInputStream(uri).use { BitmapFactory.decodeStream(it, null, bounds) }
        if (bounds.outWidth <= 0 || bounds.outHeight <= 0) throw IOException("$uri: not a readable image")
        val pixels = bounds.outWidth.toLong() * bounds.outHeight
        val limit = minOf(MAX_PIXELS, Runtime.getRuntime().maxMemory() / HEAP_BYTES_PER_PIXEL)
        if (pixels > limit) {
            throw IOException(String.format(Locale.US, "%dx%d is %.1f megapixels, more than the %.1f this device's " +
                "memory allows (the mask is computed at full resolution): crop or scale the image down first",
                bounds.outWidth, bounds.outHeight, pixels / 1e6, limit / 1e6))
        }
        val opts = BitmapFactory.Options().apply { inPreferredConfig = Bitmap.Config.ARGB_8888 }
        val bitmap = resolver.openInputStream(uri).use { BitmapFactory.decodeStream(it, null, opts) }
            ?: throw IOException("$uri: not a readable image")
        val argb = IntArray(bitmap.width * bitmap.height)
        bitmap.getPixels(argb, 0, bitmap.width, 0, 0, bitmap.width, bitmap.height)
        val rgb = RgbImage.fromArgb(bitmap.width, bitmap.height, argb)
        bitmap.recycle()
        val orientation = try {
            resolver.openInputStream(uri).use {
                if (it == null) ExifInterface.ORIENTATION_NORMAL
                else ExifInterface(it).getAttributeInt(ExifInterface.TAG_ORIENTATION, ExifInterface.ORIENTATION_NORMAL)
            }
        } catch (e: IOException) {
            ExifInterface.ORIENTATION_NORMAL // no EXIF block (PNG, WebP without one)
        }
        return ExifOrientation.apply(rgb, orientation)
    }

    fun toBitmap(image: RgbImage): Bitmap =
        Bitmap.createBitmap(image.toArgb(), image.width, image.height, Bitmap.Config.ARGB_8888)
}
