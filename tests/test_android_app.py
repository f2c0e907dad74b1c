"""The whole Android app (android_demo/app/src/main/kotlin) compiled offline by
android_demo/check_offline.sh: the contract against android.jar without the JDK, R from the
resources with aapt2, the app against android.jar + contract + R + the compile-time stubs of
LiteRT and androidx.exifinterface (android_demo/stubs, never packaged), then dexed with dx.

Before this, Segmenter.kt, Images.kt and MainActivity.kt were compiled nowhere: a typo or type
error in them shipped unnoticed. Needs a JDK, kotlinc, aapt2 and android.jar API 23 (Debian:
openjdk-17-jdk-headless kotlin android-sdk-build-tools; bullseye's android-sdk-platform-23, see
.ci/run); without them the test skips with the reason, except under EGEUNET_REQUIRE_DATA=1
(CI), where it fails. dx (bullseye's dalvik-exchange) is optional: the script says when it skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "android_demo" / "check_offline.sh"
ANDROID_JAR = Path(os.environ.get("ANDROID_JAR", "/usr/lib/android-sdk/platforms/android-23/android.jar"))
STDLIB = Path(os.environ.get("KOTLIN_STDLIB", "/usr/share/java/kotlin-stdlib.jar"))


def test_the_whole_app_compiles_offline():
    missing = [n for n in ("kotlinc", "javac", "jar", os.environ.get("AAPT2", "aapt2")) if not shutil.which(n)]
    missing += [str(p) for p in (ANDROID_JAR, STDLIB) if not p.is_file()]
    if missing:
        reason = ("compiling the Android app offline needs kotlinc, a JDK, aapt2 and android.jar API 23 "
                  "(apt-get install openjdk-17-jdk-headless kotlin android-sdk-build-tools, and bullseye's "
                  f"android-sdk-platform-23: see .ci/run); missing: {', '.join(missing)}")
        if os.environ.get("EGEUNET_REQUIRE_DATA") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    r = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=900)
    out = r.stdout + r.stderr
    assert r.returncode == 0, "android_demo/check_offline.sh failed:\n" + out[-6000:]
    for step in ("ok: contract compiled", "ok: R generated", "ok: app compiled (all of app/src/main/kotlin)"):
        assert step in r.stdout, f"missing {step!r}:\n{out[-3000:]}"
