package org.egeunet.demo

import android.os.SystemClock
import org.egeunet.contract.Overlay
import org.egeunet.contract.RgbImage
import org.egeunet.contract.SegmentationContract
import org.tensorflow.lite.Interpreter
import java.io.Closeable
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.util.Locale

/** One segmentation: the mask at the image's size, its overlay, area and timings. */
class Segmentation(val overlay: RgbImage, val mask: BooleanArray, val areaPercent: Double,
                   val inferenceMs: Double, val totalMs: Double)

/** The .tflite on LiteRT's CPU interpreter (XNNPACK), wrapped in the shared contract. */
class Segmenter(private val files: ModelFiles, threads: Int) : Closeable {
    private val spec = files.spec
    private val contract: SegmentationContract = spec.contract()
    private val interpreter = Interpreter(files.model, Interpreter.Options().setNumThreads(threads).setUseXNNPACK(true))

    init {
        val input = interpreter.getInputTensor(0)
        val output = interpreter.getOutputTensor(0)
        // DataType names (UINT8, FLOAT32, INT8) lower-cased are the manifest's NumPy dtype names.
        val problems = spec.tensorProblems(input.shape(), output.shape(),
            input.dataType().name.toLowerCase(Locale.ROOT), output.dataType().name.toLowerCase(Locale.ROOT))
        if (problems.isNotEmpty()) {
            interpreter.close()
            throw ModelFileException("${spec.file}: ${problems.joinToString("; ")}")
        }
    }

    fun segment(image: RgbImage): Segmentation {
        val t0 = SystemClock.elapsedRealtimeNanos()
        val input = contract.modelInput(image, spec.inputType)
        val output = ByteBuffer.allocateDirect(spec.size * spec.size * 4).order(ByteOrder.nativeOrder())
        val t1 = SystemClock.elapsedRealtimeNanos()
        interpreter.run(input, output)
        val t2 = SystemClock.elapsedRealtimeNanos()
        output.rewind()
        val raw = FloatArray(spec.size * spec.size).also { output.asFloatBuffer().get(it) }
        val mask = contract.mask(contract.probabilities(raw, spec.kind), image.width, image.height)
        val overlay = Overlay.draw(image, mask)
        val t3 = SystemClock.elapsedRealtimeNanos()
        return Segmentation(overlay, mask, SegmentationContract.areaPercent(mask), (t2 - t1) / 1e6, (t3 - t0) / 1e6)
    }

    override fun close() = interpreter.close()
}
