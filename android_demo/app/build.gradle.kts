plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "org.egeunet.demo"
    compileSdk = 34

    defaultConfig {
        applicationId = "org.egeunet.demo"
        minSdk = 24
        targetSdk = 34
        versionCode = 1
        versionName = "0.1.0"
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_1_8
        targetCompatibility = JavaVersion.VERSION_1_8
    }
    kotlinOptions { jvmTarget = "1.8" }
}

dependencies {
    implementation(project(":contract"))
    // LiteRT (TensorFlow Lite's new name), Interpreter API, XNNPACK CPU kernels built in.
    implementation("com.google.ai.edge.litert:litert:1.4.1")
    // BitmapFactory ignores EXIF orientation; this reads it from a content:// stream on API 24.
    implementation("androidx.exifinterface:exifinterface:1.3.7")
}

// ./gradlew :app:copyModel [-PegeunetExport=DIR]: the .tflite and manifest.json written by
// `egeunet-export --target tflite --int8` (default ../exports/tflite-int8 of the repository).
val copyModel by tasks.registering(Copy::class) {
    group = "egeunet"
    description = "Copies the egeunet-export .tflite and its manifest.json into app/src/main/assets"
    val export = rootProject.file(
        providers.gradleProperty("egeunetExport").getOrElse("../exports/tflite-int8")
    )
    doFirst {
        if (!export.resolve("manifest.json").isFile) {
            throw GradleException("$export has no manifest.json: run `egeunet-export --target tflite --int8` first")
        }
    }
    from(export) { include("*.tflite", "manifest.json") }
    into(layout.projectDirectory.dir("src/main/assets"))
}
