// The preprocessing contract shared with Python: plain Kotlin/JVM, no Android classes,
// unit-tested on the JVM against golden vectors written by `python -m egeunet.android_golden`.
plugins {
    id("org.jetbrains.kotlin.jvm")
}

java {
    sourceCompatibility = JavaVersion.VERSION_1_8
    targetCompatibility = JavaVersion.VERSION_1_8
}

tasks.withType<org.jetbrains.kotlin.gradle.tasks.KotlinCompile>().configureEach {
    kotlinOptions { jvmTarget = "1.8" } // the app compiles for Java 8 too
}

dependencies {
    testImplementation("junit:junit:4.13.2")
}

tasks.test {
    // Fresh vectors from the Python side: ./gradlew :contract:test -Pgolden=/path/to/golden
    val golden = providers.gradleProperty("golden").orElse(file("src/test/resources/golden").path)
    systemProperty("egeunet.golden", golden.get())
}
