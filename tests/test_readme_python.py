"""The README's Python example runs as shown, on a real photo and a real export."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_python_example_runs_as_shown(tflite_exports, isic_root, tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks, "the README has no Python example"
    r, out = tflite_exports["int8"]
    assert r.returncode == 0, r.stderr[-2000:]
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "tflite-int8").symlink_to(out, target_is_directory=True)
    shutil.copy(isic_root / "images" / "ISIC_0000000.jpg", tmp_path / "photo.jpg")
    for code in blocks:
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        found = re.search(r"lesion (\d+\.\d)% of the image; contract 256x256, threshold 0.5", done.stdout)
        assert found, done.stdout
        assert 1 < float(found.group(1)) < 99  # a lesion photo: some lesion, not all
