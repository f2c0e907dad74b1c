package org.egeunet.contract

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

class ModelSpecTest {
    private fun spec(inputShape: IntArray = intArrayOf(1, 256, 256, 3), dtype: String = "uint8",
                     layout: String = "NHWC", values: String = "pixels", outputDtype: String = "float32") =
        ModelSpec("egeunet_int8.tflite", 396160L, "int8", inputShape, dtype, layout, values,
            intArrayOf(1, 256, 256, 1), "logits", 256, 0.5f, 0.95, 0.97, outputDtype)

    @Test fun anInt8ExportIsAccepted() {
        assertEquals(emptyList<String>(), spec().problems())
        assertEquals(InputType.UINT8, spec().inputType)
        assertEquals(InputType.FLOAT32, spec(dtype = "float32").inputType)
    }

    @Test fun wrongInputShapeIsNamed() {
        val p = spec(inputShape = intArrayOf(1, 3, 256, 256), layout = "NCHW").problems()
        assertTrue(p.toString(), p.any { it.contains("[1, 3, 256, 256]") && it.contains("[1, 256, 256, 3]") })
        assertTrue(p.toString(), p.any { it.contains("NCHW") })
    }

    @Test fun normalizedInputIsRejected() {
        assertTrue(spec(values = "normalized").problems().any { it.contains("pixels") })
    }

    @Test fun tensorsThatDisagreeWithTheManifestAreNamed() {
        val p = spec().tensorProblems(intArrayOf(1, 320, 320, 3), intArrayOf(1, 256, 256, 1), "uint8", "float32")
        assertEquals(1, p.size)
        assertTrue(p[0], p[0].contains("[1, 320, 320, 3]"))
    }

    // A float32-input model under a uint8 manifest (or the reverse) has the very same shapes: only
    // the dtype tells them apart, and the app must say so when loading, not fail at the first image.
    @Test fun tensorDtypesThatDisagreeWithTheManifestAreNamed() {
        val shapesOk = arrayOf(intArrayOf(1, 256, 256, 3), intArrayOf(1, 256, 256, 1))
        assertEquals(emptyList<String>(), spec().tensorProblems(shapesOk[0], shapesOk[1], "uint8", "float32"))
        val p = spec().tensorProblems(shapesOk[0], shapesOk[1], "float32", "float32")
        assertEquals(p.toString(), 1, p.size)
        assertTrue(p[0], p[0].contains("float32") && p[0].contains("uint8"))
        val q = spec().tensorProblems(shapesOk[0], shapesOk[1], "uint8", "int8")
        assertTrue(q.toString(), q.size == 1 && q[0].contains("int8"))
    }

    @Test fun aNonFloatOutputIsRejected() {
        assertTrue(spec(outputDtype = "int8").problems().any { it.contains("output dtype int8") })
    }

    @Test fun badImageSizesFailClearly() {
        try {
            RgbImage(2, 2, ByteArray(5))
            throw AssertionError("expected IllegalArgumentException")
        } catch (e: IllegalArgumentException) {
            assertTrue(e.message!!, e.message!!.contains("12 bytes"))
        }
    }
}
