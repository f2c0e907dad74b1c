import json

from egeunet.benchmarks.export_table import markdown, rows


def _manifest(folder, images):
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({
        "target": "tflite", "precision": "int8", "file": "egeunet_int8.tflite", "bytes": 196496,
        "io": {"input": {"dtype": "float32", "values": "pixels"}},
        "parity": {"iou": 0.99, "dice": 0.995, "max_abs_prob": 0.05, "n_images": 64, "images": images}}))


def test_export_table_says_when_parity_was_checked_on_synthetic_images(tmp_path):
    _manifest(tmp_path / "synth" / "tflite-int8", "synthetic")
    _manifest(tmp_path / "real" / "tflite-int8", "test split of /data/isic2018")
    assert markdown(rows(tmp_path / "synth")).splitlines()[-1].endswith("| 64 synthetic |")
    assert markdown(rows(tmp_path / "real")).splitlines()[-1].endswith("| 64 |")
