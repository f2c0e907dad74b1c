"""The Android demo reads manifest.json with org.json in ModelFiles.kt: every key it reads
must be one egeunet-export writes, for every .tflite variant an app may bundle."""

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

MODEL_FILES = Path(__file__).resolve().parent.parent / "android_demo/app/src/main/kotlin/org/egeunet/demo/ModelFiles.kt"
# the Kotlin variables in ModelFiles.parse() and where in the manifest they point
KOTLIN_VARS = {"m": (), "input": ("io", "input"), "output": ("io", "output"), "pre": ("preprocessing",),
               "parity": ("parity",)}
READ = re.compile(r"\b(\w+)\.(get|opt)(?:String|Long|Int|Double|JSONArray|JSONObject)\(\"(\w+)\"\)")


def test_every_key_the_app_reads_is_in_every_tflite_manifest(tflite_exports):
    reads = READ.findall(MODEL_FILES.read_text())
    assert len(reads) >= 12, reads  # the parser was found
    unknown = {var for var, _, _ in reads} - set(KOTLIN_VARS)
    assert not unknown, f"ModelFiles.kt reads from {unknown}: add them to KOTLIN_VARS"
    for precision, (r, out) in tflite_exports.items():
        assert r.returncode == 0, r.stderr[-2000:]
        man = json.loads((out / "manifest.json").read_text())
        for var, how, key in reads:
            node = man
            for part in KOTLIN_VARS[var]:
                node = node[part]
            if how == "get":  # a required key: the app throws without it
                assert key in node, f"{precision}: the app reads {'.'.join(KOTLIN_VARS[var] + (key,))}, missing"


def test_copy_model_takes_only_a_tflite_export(tmp_path):
    """copy_model.sh on an ONNX (or Core ML) export folder must refuse, and leave the bundled
    .tflite in place, instead of replacing it with a file the app cannot load."""
    demo = tmp_path / "android_demo"
    demo.mkdir()
    shutil.copy(Path(__file__).resolve().parent.parent / "android_demo/copy_model.sh", demo / "copy_model.sh")
    assets = demo / "app/src/main/assets"

    def export(name: str, target: str, file: str) -> Path:
        d = tmp_path / name
        d.mkdir()
        data = f"{target} model bytes".encode()
        (d / file).write_bytes(data)
        (d / "manifest.json").write_text(json.dumps({"file": file, "target": target, "precision": "fp32",
                                                     "sha256": hashlib.sha256(data).hexdigest()}))
        return d

    def copy(folder: Path) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(demo / "copy_model.sh"), str(folder)], capture_output=True, text=True,
                              timeout=60)

    r = copy(export("tflite-int8", "tflite", "egeunet_int8.tflite"))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in assets.iterdir()) == ["egeunet_int8.tflite", "manifest.json"]
    r = copy(export("onnx-fp32", "onnx", "egeunet_fp32.onnx"))
    assert r.returncode == 1 and "holds a onnx export (egeunet_fp32.onnx), not a .tflite" in r.stderr, r.stderr
    assert sorted(p.name for p in assets.iterdir()) == ["egeunet_int8.tflite", "manifest.json"]
    assert json.loads((assets / "manifest.json").read_text())["target"] == "tflite"


def test_copy_model_refuses_a_broken_manifest_in_one_line(tmp_path):
    """A manifest that is not JSON, not an object, lacks "file" / "sha256", or names a path
    instead of a file gets one line naming the problem (it was a Python traceback, and a
    "../x.tflite" name copied a file the app would then look for under another name)."""
    demo = tmp_path / "android_demo"
    demo.mkdir()
    shutil.copy(Path(__file__).resolve().parent.parent / "android_demo/copy_model.sh", demo / "copy_model.sh")
    outside = tmp_path / "outside.tflite"
    outside.write_bytes(b"model")
    sha = hashlib.sha256(b"model").hexdigest()
    cases = {
        "not-json": ("{not json", "is not a readable manifest.json (JSONDecodeError"),
        "a-list": ("[1, 2]", "is not an egeunet-export manifest (a JSON list, not an object)"),
        "no-file": (json.dumps({"target": "tflite", "sha256": sha}), "is not an egeunet-export manifest: no file"),
        "no-sha": (json.dumps({"target": "tflite", "file": "m.tflite"}), "is not an egeunet-export manifest: no sha256"),
        "a-path": (json.dumps({"target": "tflite", "file": "../outside.tflite", "sha256": sha}),
                   "names '../outside.tflite': expected a plain file name beside the manifest"),
    }
    for name, (text, message) in cases.items():
        d = tmp_path / name
        d.mkdir()
        (d / "manifest.json").write_text(text)
        (d / "m.tflite").write_bytes(b"model")
        r = subprocess.run(["bash", str(demo / "copy_model.sh"), str(d)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1, (name, r.returncode, r.stdout, r.stderr)
        assert message in r.stderr and "Traceback" not in r.stderr, (name, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, (name, r.stderr)
        assert not (demo / "app").exists(), name  # nothing copied
