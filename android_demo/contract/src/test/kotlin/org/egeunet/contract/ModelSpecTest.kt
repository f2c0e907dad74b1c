package org.egeunet.contract

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

class ModelSpecTest {
    private fun spec(inputShape: IntArray = intArrayOf(1, 256, 256, 3), dtype: String = "uint8",
                     layout: String = "NHWC", values: String = "pixels") =
        ModelSpec("egeunet_int8.tflite", 396160L, "int8", inputShape, dtype, layout, values,
            intArrayOf(1, 256, 256, 1), "logits", 256, 0.5f, 0.95, 0.97)

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
        val p = spec().tensorProblems(intArrayOf(1, 320, 320, 3), intArrayOf(1, 256, 256, 1))
        assertEquals(1, p.size)
        assertTrue(p[0], p[0].contains("[1, 320, 320, 3]"))
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
