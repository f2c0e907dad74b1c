"""Shared fixtures. Tests that need the licensed data find it in ../shared/data (or
$EGEUNET_DATA for ISIC); where it is absent they skip with the reason, except under
EGEUNET_REQUIRE_DATA=1 (set by .ci/run), where a missing data folder is a failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# What the test modules importorskip (the export extra). A module-level skip cannot see
# EGEUNET_REQUIRE_DATA, so under it a broken or missing install stops the run here instead.
EXPORT_EXTRA = ("onnx", "onnxruntime", "onnx2tf", "tensorflow", "coremltools", "ai_edge_litert")


def pytest_sessionstart(session) -> None:
    if os.environ.get("EGEUNET_REQUIRE_DATA") != "1":
        return
    from egeunet.native_logs import import_quietly  # TensorFlow's start-up lines stay out of the test log

    broken = []
    for name in EXPORT_EXTRA:
        try:
            import_quietly(name)
        except Exception as e:  # noqa: BLE001 - ImportError or a broken package's own error
            broken.append(f"{name} ({e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''})")
    if broken:
        raise pytest.UsageError("EGEUNET_REQUIRE_DATA=1 but the export extra does not import: " + ", ".join(broken)
                                + "; pip install -e '.[export]'")
SHARED_DATA = REPO.parent / "shared" / "data"


def _data_dir(name: str, env: str | None = None) -> Path:
    cands = [Path(os.environ[env])] if env and os.environ.get(env) else []
    cands.append(SHARED_DATA / name)
    for c in cands:
        if (c / "splits.csv").is_file():
            return c
    reason = (f"{name} data not found (looked in {', '.join(map(str, cands))}); it is licensed and not "
              f"in the repository: put it at ../shared/data/{name}" + (f" or set ${env}" if env else ""))
    if os.environ.get("EGEUNET_REQUIRE_DATA") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def isic_root() -> Path:
    return _data_dir("isic2018", "EGEUNET_DATA")


@pytest.fixture(scope="session")
def kvasir_root() -> Path:
    return _data_dir("kvasir-seg")


TFLITE_VARIANTS = {"fp32": [], "fp16": ["--fp16"], "int8": ["--int8"],
                   "int8-full": ["--int8", "--full-integer", "--num-calib", "100"]}


@pytest.fixture(scope="session")
def tflite_exports(tmp_path_factory, isic_root):
    """`egeunet-export --target tflite` once per precision for the whole session, with the
    venv's bin/ *not* on PATH (a converter that looks tools up there would fail).
    Returns {precision: (CompletedProcess, out_dir)}."""
    pytest.importorskip("tensorflow", reason="TFLite export needs the export extra: pip install -e '.[export]'")
    root = tmp_path_factory.mktemp("tflite")
    env = dict(os.environ, PATH="/usr/bin:/bin", EGEUNET_DATA=str(isic_root))
    runs = {}
    for precision, flags in TFLITE_VARIANTS.items():
        out = root / precision
        r = subprocess.run([sys.executable, "-m", "egeunet", "export", "--target", "tflite", *flags,
                            "--out", str(out), "--num-verify", "32", "--min-iou", "0"],
                           capture_output=True, text=True, env=env, cwd=root)
        runs[precision] = (r, out)
    return runs


def skip_without_cxx_compiler(what: str) -> None:
    """Skip where no C++ compiler is on PATH (fail under EGEUNET_REQUIRE_DATA=1, set by .ci/run,
    as for the other tools): inductor (torch.compile on CPU) builds its kernels with one;
    without one, training runs the eager kernels."""
    import shutil

    if any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        return
    reason = f"{what}: no C++ compiler on PATH (g++, c++ or clang++); torch.compile needs one on CPU"
    if os.environ.get("EGEUNET_REQUIRE_DATA") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def exit_code(main, args: list[str]) -> int:
    """A CLI ``main`` run in this process (no interpreter start-up): its exit code, argparse's
    refusals (SystemExit) included."""
    try:
        return main(args)
    except SystemExit as e:
        return e.code


def refusal(main, args: list[str], capsys) -> str:
    """stderr of a CLI ``main`` that must refuse ``args``: exit code 2, no traceback."""
    code = exit_code(main, args)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, (code, err)
    return err


def png_header_only(path, width: int, height: int) -> None:
    """A PNG of a few bytes that declares ``width`` x ``height`` (a decompression bomb's header)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                           + chunk(b"IEND", b""))
