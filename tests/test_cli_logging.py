"""What the console scripts print: our own progress lines, not other libraries' INFO logs."""

import subprocess
import sys

import pytest

SCRIPT = """
import logging
from egeunet.cli import _user_errors

@_user_errors
def main(argv=None):
    logging.getLogger("coremltools").info("Removing op x (type: const)")
    logging.getLogger("coremltools").warning("a library warning")
    logging.getLogger("egeunet.export.api").info("[verify] our progress line")
    return 0

raise SystemExit(main([]))
"""


def test_console_scripts_show_our_info_lines_and_only_warnings_of_other_libraries():
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "[verify] our progress line" in r.stderr
    assert "a library warning" in r.stderr
    assert "Removing op" not in r.stderr


def test_coreml_export_does_not_print_every_converted_op(tmp_path):
    pytest.importorskip("coremltools", reason="Core ML export needs the export extra: pip install -e '.[export]'")
    r = subprocess.run([sys.executable, "-m", "egeunet", "export", "--target", "coreml", "--num-verify", "2",
                        "--out", str(tmp_path / "cm")], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "manifest:" in r.stdout
    out = r.stdout + r.stderr
    assert "Removing op" not in out and "Converting op" not in out, out[-2000:]
