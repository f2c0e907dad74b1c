package org.egeunet.demo

import android.content.ContentResolver
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.net.Uri
import androidx.exifinterface.media.ExifInterface
import org.egeunet.contract.ExifOrientation
import org.egeunet.contract.RgbImage
import java.io.IOException

/**
 * A gallery image as the Python contract decodes it: RGB, EXIF orientation applied, full
 * resolution (decoding at a reduced size would change what the model sees). Differences that
 * remain: JPEG decoders may differ from Pillow's by a level or so per pixel, and Android
 * composites transparent PNG pixels differently from Python's "on black".
 */
object Images {
    fun read(resolver: ContentResolver, uri: Uri): RgbImage {
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
