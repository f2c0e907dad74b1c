"""The Android demo reads manifest.json with org.json in ModelFiles.kt: every key it reads
must be one egeunet-export writes, for every .tflite variant an app may bundle."""

import json
import re
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
