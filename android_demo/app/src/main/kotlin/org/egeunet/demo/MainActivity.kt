package org.egeunet.demo

import android.app.Activity
import android.content.Intent
import android.os.Bundle
import android.widget.Button
import android.widget.ImageView
import android.widget.TextView
import java.util.Locale
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/** Pick an image, segment it with the bundled .tflite, show the overlay, area and timing. */
class MainActivity : Activity() {
    private val worker: ExecutorService = Executors.newSingleThreadExecutor()
    // Touched only on `worker`: loadModel() is queued first in onCreate, so any segmentation or
    // close queued after it sees the loaded model. (Set from the UI thread, it was still null when
    // onActivityResult ran right after a re-created onCreate, e.g. the activity was destroyed while
    // the picker was open, and the picked image was dropped without a word; and onDestroy during
    // loading left the interpreter open.)
    private var segmenter: Segmenter? = null
    private lateinit var modelText: TextView
    private lateinit var resultText: TextView
    private lateinit var imageView: ImageView
    private lateinit var pickButton: Button

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        // Explicit casts: android.jar API 23 (check_offline.sh) has the pre-API-26 non-generic findViewById.
        modelText = findViewById(R.id.model) as TextView
        resultText = findViewById(R.id.result) as TextView
        imageView = findViewById(R.id.image) as ImageView
        pickButton = findViewById(R.id.pick) as Button
        pickButton.isEnabled = false
        pickButton.setOnClickListener {
            val pick = Intent(Intent.ACTION_GET_CONTENT).setType("image/*").addCategory(Intent.CATEGORY_OPENABLE)
            startActivityForResult(pick, PICK_IMAGE)
        }
        worker.execute { loadModel() }
    }

    private fun loadModel() {
        try {
            val files = ModelFiles.load(assets)
            val s = Segmenter(files, threads = 4)
            val spec = files.spec
            val parity = if (spec.parityIou != null && spec.parityDice != null) {
                String.format(Locale.US, "mask IoU %.4f, Dice %.4f vs PyTorch", spec.parityIou, spec.parityDice)
            } else "not recorded"
            val text = String.format(Locale.US, "%s (%s, %.1f kB, input %s %s)\nparity: %s",
                spec.file, spec.precision, spec.bytes / 1000.0, spec.inputDtype,
                spec.inputShape.joinToString("x"), parity)
            segmenter = s
            runOnUiThread {
                modelText.text = text
                pickButton.isEnabled = true
            }
        } catch (e: ModelFileException) {
            runOnUiThread { modelText.text = e.message }
        } catch (e: RuntimeException) {
            // LiteRT: IllegalArgumentException (not a flatbuffer, unsupported op) and IllegalStateException
            // (tensors cannot be allocated, no runtime); uncaught on this thread, either killed the app.
            runOnUiThread { modelText.text = "The bundled model cannot be loaded by LiteRT: $e" }
        } catch (e: LinkageError) { // LiteRT's native library missing for this ABI
            runOnUiThread { modelText.text = "LiteRT cannot run on this device: $e" }
        }
    }

    override fun onActivityResult(requestCode: Int, resultCode: Int, data: Intent?) {
        super.onActivityResult(requestCode, resultCode, data)
        val uri = data?.data
        if (requestCode != PICK_IMAGE || resultCode != RESULT_OK || uri == null) return
        resultText.text = "Segmenting..."
        worker.execute {
            val s = segmenter
            if (s == null) { // loadModel() has run and failed: modelText says why
                runOnUiThread { resultText.text = "No model loaded: see the message above." }
                return@execute
            }
            try {
                val image = Images.read(contentResolver, uri)
                val r = s.segment(image)
                val bitmap = Images.toBitmap(r.overlay)
                val text = String.format(Locale.US, "lesion area %.2f %%\ninference %.1f ms (total %.1f ms), %dx%d",
                    r.areaPercent, r.inferenceMs, r.totalMs, image.width, image.height)
                runOnUiThread {
                    imageView.setImageBitmap(bitmap)
                    resultText.text = text
                }
            } catch (e: Exception) {
                runOnUiThread { resultText.text = "Could not segment this image: ${e.message}" }
            } catch (e: OutOfMemoryError) {
                // An Error, not an Exception: uncaught, it killed the app. The contract works at the
                // image's full resolution; Images.read refuses what clearly cannot fit, this is the rest.
                runOnUiThread { resultText.text = "Could not segment this image: not enough memory for its size." }
            }
        }
    }

    override fun onDestroy() {
        worker.execute { segmenter?.close(); segmenter = null } // after loading and any segmentation still queued
        worker.shutdown()
        super.onDestroy()
    }

    companion object {
        private const val PICK_IMAGE = 1
    }
}
