"""The Android demo's Kotlin contract (android_demo/contract) against the live Python contract.

Golden vectors are written from the Python code of this checkout, the Kotlin module and its
JUnit tests are compiled with kotlinc and run with the JUnit console launcher: a change to
egeunet/preprocess.py (or predict.overlay) without the same change in Kotlin fails here.
Needs a JDK, kotlinc and JUnit (Debian: openjdk-17-jdk-headless kotlin junit4 junit5); without
them the tests skip with the reason, except under EGEUNET_REQUIRE_DATA=1 (CI), where they fail.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from egeunet.android_golden import write_golden

REPO = Path(__file__).resolve().parent.parent
CONTRACT = REPO / "android_demo" / "contract"
COMMITTED = CONTRACT / "src" / "test" / "resources" / "golden"
JARS = Path(os.environ.get("EGEUNET_JAVA_LIBS", "/usr/share/java"))
CONSOLE = JARS / "junit-platform-console-standalone.jar"
TEST_CP = [JARS / "junit4.jar", JARS / "hamcrest-core.jar"]
STDLIB = JARS / "kotlin-stdlib.jar"


def _need(ok: bool, reason: str) -> None:
    if ok:
        return
    if os.environ.get("EGEUNET_REQUIRE_DATA") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def kotlin_classes(tmp_path_factory) -> Path:
    """The contract module and its tests compiled once (kotlinc 1.3 takes ~15 s here)."""
    kotlinc, java = shutil.which("kotlinc"), shutil.which("java")
    missing = [str(p) for p in (CONSOLE, STDLIB, *TEST_CP) if not p.is_file()]
    _need(bool(kotlinc and java) and not missing,
          "the Kotlin contract tests need java, kotlinc and JUnit "
          f"(apt-get install openjdk-17-jdk-headless kotlin junit4 junit5); missing: "
          f"{', '.join([n for n, w in (('kotlinc', kotlinc), ('java', java)) if not w] + missing)}")
    out = tmp_path_factory.mktemp("kotlin") / "classes"
    cp = os.pathsep.join(map(str, TEST_CP))
    r = subprocess.run([kotlinc, "src/main/kotlin", "src/test/kotlin", "-cp", cp, "-d", str(out)],
                       cwd=CONTRACT, capture_output=True, text=True, timeout=600)
    errors = [ln for ln in (r.stdout + r.stderr).splitlines() if "error:" in ln]
    assert r.returncode == 0 and not errors, "kotlinc failed:\n" + "\n".join(errors or [r.stderr[-3000:]])
    return out


def _run_junit(classes: Path, golden: Path) -> subprocess.CompletedProcess:
    cp = os.pathsep.join(map(str, [classes, STDLIB, *TEST_CP]))
    return subprocess.run(["java", f"-Degeunet.golden={golden}", "-jar", str(CONSOLE), "-cp", cp,
                           "--select-package", "org.egeunet.contract", "--disable-banner",
                           "--disable-ansi-colors", "--details=summary"],
                          capture_output=True, text=True, timeout=600)


def _assert_passed(r: subprocess.CompletedProcess, min_tests: int) -> None:
    out = r.stdout + r.stderr
    assert r.returncode == 0, "Kotlin contract differs from Python:\n" + out[-6000:]
    found = [int(ln.split()[1]) for ln in out.splitlines() if ln.strip().startswith("[") and "tests successful" in ln]
    assert found and found[0] >= min_tests, f"expected at least {min_tests} JUnit tests to pass:\n{out[-3000:]}"


def test_kotlin_contract_matches_python_synthetic(kotlin_classes, tmp_path):
    golden = write_golden(tmp_path / "golden")
    n_cases = len(list((golden / "cases").iterdir()))
    _assert_passed(_run_junit(kotlin_classes, golden), min_tests=6 * n_cases + 2)


def test_kotlin_contract_matches_python_on_isic(kotlin_classes, isic_root, tmp_path):
    """Real dermoscopy images (CC BY-NC: written to tmp, never committed), squeezed to odd sizes."""
    golden = write_golden(tmp_path / "golden", isic=isic_root)
    isic_cases = [p.name for p in (golden / "cases").iterdir() if p.name.startswith("isic_")]
    assert len(isic_cases) == 3, isic_cases
    _assert_passed(_run_junit(kotlin_classes, golden), min_tests=6 * 3)


def test_committed_golden_vectors_are_current(tmp_path):
    """The copy under android_demo/contract/src/test/resources (for `./gradlew :contract:test`)
    must be what the Python contract writes today."""
    fresh = write_golden(tmp_path / "golden", compact=True)
    cmp = filecmp.dircmp(fresh, COMMITTED)
    stale: list[str] = []

    def walk(c: filecmp.dircmp, rel: str) -> None:
        stale.extend(f"{rel}{n} (only in new)" for n in c.left_only)
        stale.extend(f"{rel}{n} (only in committed)" for n in c.right_only)
        _, mismatch, errors = filecmp.cmpfiles(c.left, c.right, c.common_files, shallow=False)
        stale.extend(f"{rel}{n} (differs)" for n in mismatch + errors)
        for name, sub in c.subdirs.items():
            walk(sub, f"{rel}{name}/")

    walk(cmp, "")
    assert not stale, ("committed golden vectors are stale; regenerate with `python -m egeunet.android_golden "
                       f"{COMMITTED.relative_to(REPO)} --compact` and make the Kotlin tests pass: {stale[:10]}")


def test_committed_golden_vectors_are_small_and_synthetic():
    files = [p for p in COMMITTED.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 500_000
    assert not [p for p in files if "isic" in str(p.relative_to(COMMITTED)).lower()], "ISIC data must not be committed"
