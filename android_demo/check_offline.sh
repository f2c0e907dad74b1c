#!/usr/bin/env bash
# What of the app can be checked without Android Studio, Gradle plugins or Maven (see README):
#  1. the contract module compiled against android.jar *instead of* the JDK (so it uses only
#     APIs an Android device has) and dexed with dx for min-sdk 24;
#  2. app/.../ModelFiles.kt (org.json manifest reading) compiled against android.jar + contract.
# Segmenter.kt (LiteRT), Images.kt (androidx.exifinterface) and MainActivity.kt (uses both and R)
# need the Maven libraries and the Android Gradle plugin: they are NOT compiled here.
#   ANDROID_JAR=.../android-23/android.jar DX=.../dx android_demo/check_offline.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
android_jar="${ANDROID_JAR:-/usr/lib/android-sdk/platforms/android-23/android.jar}"
dx="${DX:-/usr/lib/android-sdk/build-tools/debian/dx}"
stdlib="${KOTLIN_STDLIB:-/usr/share/java/kotlin-stdlib.jar}"
[ -f "$android_jar" ] || { echo "no android.jar at $android_jar (Debian bullseye: android-sdk-platform-23)" >&2; exit 1; }
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
kotlinc -no-jdk -no-reflect -cp "$android_jar:$stdlib" "$here/contract/src/main/kotlin" -d "$out/contract" 2>&1 | grep -v "^OpenJDK\|^warning: unable to find kotlin-stdlib" || true
[ -f "$out/contract/org/egeunet/contract/PillowResize.class" ] || { echo "contract did not compile against android.jar" >&2; exit 1; }
echo "ok: contract compiled against android.jar without the JDK"
kotlinc -no-jdk -no-reflect -cp "$android_jar:$stdlib:$out/contract" "$here/app/src/main/kotlin/org/egeunet/demo/ModelFiles.kt" -d "$out/app" 2>&1 | grep -v "^OpenJDK\|^warning: unable to find kotlin-stdlib" || true
[ -f "$out/app/org/egeunet/demo/ModelFiles.class" ] || { echo "ModelFiles.kt did not compile against android.jar" >&2; exit 1; }
echo "ok: app ModelFiles.kt compiled against android.jar + contract"
if [ -x "$dx" ] || command -v "$dx" >/dev/null; then
    (cd "$out/contract" && jar cf "$out/contract.jar" .)
    (cd "$out/app" && jar cf "$out/app.jar" .)
    "$dx" --dex --min-sdk-version=24 --output="$out/classes.dex" "$out/contract.jar" "$out/app.jar"
    echo "ok: dexed for min-sdk 24 ($(stat -c %s "$out/classes.dex") bytes)"
else
    echo "skipped dx: not found at $dx (Debian bullseye: dalvik-exchange)"
fi
