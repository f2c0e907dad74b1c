package org.egeunet.contract

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import org.junit.runner.RunWith
import org.junit.runners.Parameterized
import java.io.File
import java.io.FileInputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.security.MessageDigest
import java.util.Properties
import java.util.zip.GZIPInputStream

/**
 * The Kotlin contract against golden vectors written by the live Python contract
 * (`python -m egeunet.android_golden DIR`). The folder is the system property
 * `egeunet.golden`, else the committed copy in src/test/resources/golden.
 */
object Golden {
    val dir: File by lazy {
        val d = File(System.getProperty("egeunet.golden") ?: "src/test/resources/golden")
        if (!File(d, "contract.properties").isFile) {
            throw IllegalStateException("no golden vectors in ${d.absolutePath}: write them with " +
                "`python -m egeunet.android_golden DIR` and pass -Degeunet.golden=DIR")
        }
        d
    }
    val contractProps: Properties by lazy { props(File(dir, "contract.properties")) }
    val size: Int get() = contractProps.getProperty("size").toInt()
    val threshold: Float get() = contractProps.getProperty("threshold").toFloat()

    fun props(f: File): Properties {
        val p = Properties()
        FileInputStream(f).use { p.load(it) }
        return p
    }

    fun bytes(f: File): ByteArray {
        if (!f.isFile) throw IllegalStateException("missing golden file ${f.absolutePath}")
        return GZIPInputStream(FileInputStream(f)).use { it.readBytes() }
    }

    fun floats(f: File): FloatArray {
        val b = ByteBuffer.wrap(bytes(f)).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer()
        return FloatArray(b.remaining()).also { b.get(it) }
    }

    fun floatBytes(a: FloatArray): ByteArray {
        val b = ByteBuffer.allocate(a.size * 4).order(ByteOrder.LITTLE_ENDIAN)
        b.asFloatBuffer().put(a)
        return b.array()
    }

    fun maskBytes(m: BooleanArray): ByteArray = ByteArray(m.size) { if (m[it]) 1 else 0 }

    fun sha256(b: ByteArray): String =
        MessageDigest.getInstance("SHA-256").digest(b).joinToString("") { "%02x".format(it) }
}

@RunWith(Parameterized::class)
class GoldenCaseTest(private val name: String) {
    companion object {
        @JvmStatic
        @Parameterized.Parameters(name = "{0}")
        fun cases(): List<String> {
            val names = File(Golden.dir, "cases").list()?.sorted() ?: emptyList()
            if (names.isEmpty()) throw IllegalStateException("no cases in ${Golden.dir}/cases")
            return names
        }
    }

    private val dir = File(File(Golden.dir, "cases"), name)
    private val props = Golden.props(File(dir, "case.properties"))
    private val width = props.getProperty("width").toInt()
    private val height = props.getProperty("height").toInt()
    private val image = RgbImage(width, height, Golden.bytes(File(dir, "image.rgb.gz")))
    private val contract = SegmentationContract(Golden.size, Golden.threshold)
    private val map = props.getProperty("output_map")
    private val logits = Golden.floats(File(Golden.dir, "maps/$map.logits.f32.gz"))
    private val pythonProbs = Golden.floats(File(Golden.dir, "maps/$map.probs.f32.gz"))
    private val pythonMask = Golden.bytes(File(dir, "mask.gz"))

    /** Compare with the full array when it was written, else with its SHA-256 only. */
    private fun assertOutput(key: String, actual: ByteArray, bytesPerPixel: Int, rowWidth: Int) {
        val full = File(dir, "$key.gz")
        if (full.isFile) {
            val expected = Golden.bytes(full)
            assertEquals("$name $key: length", expected.size, actual.size)
            var diffs = 0
            var first = -1
            for (i in expected.indices) if (expected[i] != actual[i]) { diffs++; if (first < 0) first = i }
            if (diffs > 0) {
                val px = first / bytesPerPixel
                fail("$name $key: $diffs of ${expected.size} values differ from Python; first at " +
                     "x=${px % rowWidth} y=${px / rowWidth} channel ${first % bytesPerPixel}: " +
                     "Python ${expected[first].toInt() and 0xFF}, Kotlin ${actual[first].toInt() and 0xFF}")
            }
        }
        assertEquals("$name $key: SHA-256 differs from Python's", props.getProperty("${key}_sha256"), Golden.sha256(actual))
    }

    @Test fun modelInputBytesMatchPython() {
        val buf = contract.modelInput(image, InputType.UINT8)
        val bytes = ByteArray(buf.remaining()).also { buf.get(it) }
        assertOutput("input_uint8", bytes, 3, Golden.size)
    }

    @Test fun floatInputIsTheSamePixelsAsFloats() {
        val u8 = contract.modelInput(image, InputType.UINT8)
        val f32 = contract.modelInput(image, InputType.FLOAT32).asFloatBuffer()
        assertEquals(u8.remaining(), f32.remaining())
        for (i in 0 until u8.remaining()) assertEquals((u8.get(i).toInt() and 0xFF).toFloat(), f32.get(i), 0f)
    }

    @Test fun probabilityResizeIsBitExact() {
        // Python's own probabilities in: only the resampler is under test.
        val resized = if (width == Golden.size && height == Golden.size) pythonProbs
                      else PillowResize.resizeFloat(pythonProbs, Golden.size, Golden.size, width, height)
        assertEquals("$name: resized probabilities (float32 bits)", props.getProperty("resized_probs_sha256"),
            Golden.sha256(Golden.floatBytes(resized)))
        assertArrayEquals("$name: mask from Python's probabilities", pythonMask,
            Golden.maskBytes(contract.mask(pythonProbs, width, height)))
    }

    @Test fun sigmoidMatchesNumpyToTheLastBit() {
        val probs = contract.probabilities(logits, OutputKind.LOGITS)
        var worst = 0.0
        var differing = 0
        for (i in probs.indices) {
            val d = Math.abs(probs[i].toDouble() - pythonProbs[i])
            if (d > 0) differing++
            worst = Math.max(worst, d)
        }
        // NumPy's float32 tanh is not always correctly rounded: at most one ulp apart (6e-8 near 1).
        assertTrue("$name: sigmoid differs from Python by $worst ($differing values)", worst <= 1.2e-7)
    }

    @Test fun maskFromModelOutputMatchesPython() {
        val mask = contract.mask(contract.probabilities(logits, OutputKind.LOGITS), width, height)
        val borderline = Golden.bytes(File(dir, "borderline.gz"))
        var flips = 0
        for (i in mask.indices) {
            val py = pythonMask[i].toInt() == 1
            if (mask[i] != py) {
                if (borderline[i].toInt() == 0) {
                    fail("$name: mask differs from Python at x=${i % width} y=${i / width}, " +
                         "a pixel not within ${Golden.contractProps.getProperty("borderline_eps")} of the threshold")
                }
                flips++
            }
        }
        val pyArea = props.getProperty("area_percent").toDouble()
        if (flips == 0) assertEquals("$name: area %", pyArea, SegmentationContract.areaPercent(mask), 0.0)
        else assertEquals("$name: area %", pyArea, SegmentationContract.areaPercent(mask), 100.0 * flips / mask.size)
    }

    @Test fun overlayMatchesPython() {
        val mask = BooleanArray(pythonMask.size) { pythonMask[it].toInt() == 1 }
        assertOutput("overlay", Overlay.draw(image, mask).pixels, 3, width)
    }
}

class GoldenContractTest {
    @Test fun overlayConstantsMatchPython() {
        val p = Golden.contractProps
        assertEquals(p.getProperty("overlay_alpha").toDouble(), Overlay.ALPHA, 0.0)
        assertEquals(p.getProperty("overlay_rgb"), Overlay.FILL_RGB.joinToString(","))
        assertEquals(p.getProperty("contour_rgb"), Overlay.CONTOUR_RGB.joinToString(","))
    }

    @Test fun exifOrientationMatchesPillow() {
        val d = File(Golden.dir, "orientation")
        val p = Golden.props(File(d, "orientation.properties"))
        val src = RgbImage(p.getProperty("width").toInt(), p.getProperty("height").toInt(),
            Golden.bytes(File(d, "source.rgb.gz")))
        for (o in 1..8) {
            val out = ExifOrientation.apply(src, o)
            assertEquals("orientation $o: width", p.getProperty("o$o.width").toInt(), out.width)
            assertEquals("orientation $o: height", p.getProperty("o$o.height").toInt(), out.height)
            assertArrayEquals("orientation $o: pixels", Golden.bytes(File(d, "o$o.rgb.gz")), out.pixels)
        }
    }
}
