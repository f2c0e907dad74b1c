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
    private var segmenter: Segmenter? = null
    private lateinit var modelText: TextView
    private lateinit var resultText: TextView
    private lateinit var imageView: ImageView
    private lateinit var pickButton: Button

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        modelText = findViewById(R.id.model)
        resultText = findViewById(R.id.result)
        imageView = findViewById(R.id.image)
        pickButton = findViewById(R.id.pick)
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
            runOnUiThread {
                segmenter = s
                modelText.text = text
                pickButton.isEnabled = true
            }
        } catch (e: ModelFileException) {
            runOnUiThread { modelText.text = e.message }
        } catch (e: IllegalArgumentException) { // LiteRT: not a flatbuffer / unsupported op
            runOnUiThread { modelText.text = "The bundled model cannot be loaded by LiteRT: ${e.message}" }
        }
    }

    override fun onActivityResult(requestCode: Int, resultCode: Int, data: Intent?) {
        super.onActivityResult(requestCode, resultCode, data)
        val uri = data?.data
        val s = segmenter
        if (requestCode != PICK_IMAGE || resultCode != RESULT_OK || uri == null || s == null) return
        resultText.text = "Segmenting..."
        worker.execute {
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
            }
        }
    }

    override fun onDestroy() {
        worker.execute { segmenter?.close() } // after any segmentation still running
        worker.shutdown()
        super.onDestroy()
    }

    companion object {
        private const val PICK_IMAGE = 1
    }
}
