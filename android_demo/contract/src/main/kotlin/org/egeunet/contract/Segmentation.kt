package org.egeunet.contract

import java.nio.ByteBuffer
import java.nio.ByteOrder

/** The element type of a model's pixel input: uint8 for an int8 export, float32 otherwise. */
enum class InputType(val bytesPerValue: Int) { UINT8(1), FLOAT32(4) }

/** What the model's output map holds (the manifest's `io.output.kind`). */
enum class OutputKind { LOGITS, PROBS }

/**
 * The preprocessing contract of `egeunet/preprocess.py`, for models that take raw RGB pixels
 * (every `egeunet-export --target tflite` file: normalisation is inside the graph):
 *
 * 1. resize the RGB image to [size] x [size] with Pillow's BILINEAR ([PillowResize.resizeRgb]);
 * 2. pack it NHWC, batch 1: bytes as they are (uint8 model) or as float values 0..255;
 * 3. output logits -> probabilities `0.5 * (1 + tanh(x / 2))` in float32;
 * 4. resize the size x size probability map to the image's own size (Pillow's 'F' resampler)
 *    and threshold: lesion where probability >= [threshold].
 */
class SegmentationContract(val size: Int, val threshold: Float) {
    init {
        require(size > 0) { "model input size must be positive, got $size" }
        require(threshold > 0f && threshold < 1f) { "threshold must lie strictly between 0 and 1, got $threshold" }
    }

    /** Step 1: the image as the model sees it. */
    fun resize(image: RgbImage): RgbImage =
        if (image.width == size && image.height == size) image else PillowResize.resizeRgb(image, size, size)

    /** Steps 1-2: a direct, native-order buffer for the interpreter's input tensor. */
    fun modelInput(image: RgbImage, type: InputType): ByteBuffer {
        val pixels = resize(image).pixels
        val buf = ByteBuffer.allocateDirect(pixels.size * type.bytesPerValue).order(ByteOrder.nativeOrder())
        when (type) {
            InputType.UINT8 -> buf.put(pixels)
            InputType.FLOAT32 -> for (b in pixels) buf.putFloat((b.toInt() and 0xFF).toFloat())
        }
        buf.rewind()
        return buf
    }

    /** Step 3: the output map (size x size) as probabilities. */
    fun probabilities(output: FloatArray, kind: OutputKind): FloatArray {
        require(output.size == size * size) { "expected a ${size}x$size output map, got ${output.size} values" }
        return if (kind == OutputKind.PROBS) output.copyOf() else FloatArray(output.size) { sigmoid(output[it]) }
    }

    /** Step 4: the lesion mask at the original [width] x [height], row-major. */
    fun mask(probabilities: FloatArray, width: Int, height: Int): BooleanArray {
        val p = if (width == size && height == size) probabilities
                else PillowResize.resizeFloat(probabilities, size, size, width, height)
        return BooleanArray(p.size) { p[it] >= threshold }
    }

    companion object {
        /**
         * Python's float32 `0.5 * (1 + tanh(0.5 * x))`. tanh is evaluated in double and rounded:
         * NumPy's float32 tanh may differ from that in the last bit, which can flip a mask pixel
         * only where the resized probability equals the threshold to ~1e-7.
         */
        fun sigmoid(x: Float): Float {
            val t = Math.tanh((0.5f * x).toDouble()).toFloat()
            return 0.5f * (1f + t)
        }

        /** Lesion area in percent of the image, as `100 * mask.mean()`. */
        fun areaPercent(mask: BooleanArray): Double {
            require(mask.isNotEmpty()) { "empty mask" }
            var n = 0
            for (m in mask) if (m) n++
            return 100.0 * (n.toDouble() / mask.size)
        }
    }
}
