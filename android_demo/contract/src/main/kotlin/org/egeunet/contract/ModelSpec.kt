package org.egeunet.contract

/**
 * What the app needs from an export's `manifest.json` (read with `org.json` in the app), and
 * the checks that turn a wrong model into a clear message instead of a crash or garbage.
 */
class ModelSpec(
    val file: String,
    val bytes: Long,
    val precision: String,
    val inputShape: IntArray,
    val inputDtype: String,
    val inputLayout: String,
    val inputValues: String,
    val outputShape: IntArray,
    val outputKind: String,
    val size: Int,
    val threshold: Float,
    val parityIou: Double?,
    val parityDice: Double?,
    /** `io.output.dtype`: the app reads the output map as float32, so nothing else can run. */
    val outputDtype: String = "float32"
) {
    /** Problems with the manifest itself; empty when the demo can run this model. */
    fun problems(): List<String> {
        val p = ArrayList<String>()
        val expectIn = intArrayOf(1, size, size, 3)
        if (!inputShape.contentEquals(expectIn)) {
            p.add("input shape ${inputShape.contentToString()}, expected ${expectIn.contentToString()} (NHWC RGB)")
        }
        if (inputLayout != "NHWC") p.add("input layout $inputLayout, expected NHWC (export with egeunet-export --target tflite)")
        if (inputValues != "pixels") p.add("input values '$inputValues', expected raw 'pixels' (a tflite from egeunet-export)")
        if (inputDtype != "uint8" && inputDtype != "float32") p.add("input dtype $inputDtype, expected uint8 or float32")
        val expectOut = intArrayOf(1, size, size, 1)
        if (!outputShape.contentEquals(expectOut)) {
            p.add("output shape ${outputShape.contentToString()}, expected ${expectOut.contentToString()}")
        }
        if (outputKind != "logits" && outputKind != "probs") p.add("output kind '$outputKind', expected logits or probs")
        if (outputDtype != "float32") p.add("output dtype $outputDtype, expected float32 (the app reads a float map)")
        return p
    }

    /**
     * Problems between the manifest and the tensors the interpreter actually reports. Dtypes are
     * compared too (lower-case names, e.g. "uint8", "float32"): a uint8 and a float32 model have
     * the same shapes, and a wrong one would otherwise fail only at the first image, as a LiteRT
     * "Cannot copy ... bytes" error, instead of at load time with the reason.
     */
    fun tensorProblems(actualInput: IntArray, actualOutput: IntArray,
                       actualInputDtype: String, actualOutputDtype: String): List<String> {
        val p = ArrayList<String>()
        if (actualInputDtype != inputDtype) {
            p.add("the model's input is $actualInputDtype but manifest.json says $inputDtype: " +
                  "model and manifest come from different exports")
        }
        if (actualOutputDtype != outputDtype) {
            p.add("the model's output is $actualOutputDtype but manifest.json says $outputDtype")
        }
        if (!actualInput.contentEquals(inputShape)) {
            p.add("the model's input is ${actualInput.contentToString()} but manifest.json says " +
                  "${inputShape.contentToString()}: model and manifest come from different exports")
        }
        if (!actualOutput.contentEquals(outputShape)) {
            p.add("the model's output is ${actualOutput.contentToString()} but manifest.json says " +
                  "${outputShape.contentToString()}")
        }
        return p
    }

    val inputType: InputType get() = if (inputDtype == "uint8") InputType.UINT8 else InputType.FLOAT32
    val kind: OutputKind get() = if (outputKind == "probs") OutputKind.PROBS else OutputKind.LOGITS
    fun contract(): SegmentationContract = SegmentationContract(size, threshold)
}
