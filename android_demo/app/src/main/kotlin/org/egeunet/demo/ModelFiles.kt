package org.egeunet.demo

import android.content.res.AssetManager
import org.egeunet.contract.ModelSpec
import org.json.JSONArray
import org.json.JSONException
import org.json.JSONObject
import java.io.FileNotFoundException
import java.nio.ByteBuffer
import java.nio.ByteOrder

/** A problem with the bundled model that the screen should show as it is. */
class ModelFileException(message: String) : Exception(message)

/** The export bundled in assets/: `manifest.json` and the .tflite it names (copy_model.sh puts them there). */
class ModelFiles(val spec: ModelSpec, val model: ByteBuffer) {
    companion object {
        private const val HOW = "Run android_demo/copy_model.sh (or ./gradlew :app:copyModel) after " +
            "`egeunet-export --target tflite --int8`, then rebuild the app."

        fun load(assets: AssetManager): ModelFiles {
            val manifest = try {
                assets.open("manifest.json").use { String(it.readBytes(), Charsets.UTF_8) }
            } catch (e: FileNotFoundException) {
                throw ModelFileException("No model in this app: assets/manifest.json is missing. $HOW")
            }
            val spec = try {
                parse(JSONObject(manifest))
            } catch (e: JSONException) {
                throw ModelFileException("assets/manifest.json is not an egeunet-export manifest (${e.message}). $HOW")
            }
            val problems = spec.problems()
            if (problems.isNotEmpty()) {
                throw ModelFileException("${spec.file} cannot run in this demo: ${problems.joinToString("; ")}")
            }
            val bytes = try {
                assets.open(spec.file).use { it.readBytes() }
            } catch (e: FileNotFoundException) {
                throw ModelFileException("manifest.json names ${spec.file}, which is not in assets/. $HOW")
            }
            if (bytes.size.toLong() != spec.bytes) {
                throw ModelFileException("${spec.file} has ${bytes.size} bytes, manifest.json says ${spec.bytes}: " +
                    "model and manifest come from different exports. $HOW")
            }
            val buf = ByteBuffer.allocateDirect(bytes.size).order(ByteOrder.nativeOrder())
            buf.put(bytes)
            buf.rewind()
            return ModelFiles(spec, buf)
        }

        /** The manifest keys written by egeunet/export/manifest.py. */
        fun parse(m: JSONObject): ModelSpec {
            val input = m.getJSONObject("io").getJSONObject("input")
            val output = m.getJSONObject("io").getJSONObject("output")
            val pre = m.getJSONObject("preprocessing")
            val parity = m.optJSONObject("parity")
            return ModelSpec(
                file = m.getString("file"),
                bytes = m.getLong("bytes"),
                precision = m.getString("precision"),
                inputShape = ints(input.getJSONArray("shape")),
                inputDtype = input.getString("dtype"),
                inputLayout = input.getString("layout"),
                inputValues = input.getString("values"),
                outputShape = ints(output.getJSONArray("shape")),
                outputKind = output.getString("kind"),
                size = pre.getInt("size"),
                threshold = pre.getDouble("threshold").toFloat(),
                parityIou = if (parity != null && parity.has("iou")) parity.getDouble("iou") else null,
                parityDice = if (parity != null && parity.has("dice")) parity.getDouble("dice") else null,
                outputDtype = output.getString("dtype")
            )
        }

        private fun ints(a: JSONArray): IntArray = IntArray(a.length()) { a.getInt(it) }
    }
}
