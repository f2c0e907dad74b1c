"""Core ML: converted and inspected on any OS; prediction (parity) only on macOS."""

import json
import platform

import pytest

ct = pytest.importorskip("coremltools", reason="Core ML export needs the export extra: pip install -e '.[export]'")

from egeunet.export import export  # noqa: E402

ON_MAC = platform.system() == "Darwin"


@pytest.fixture(scope="module")
def coreml_exports(tmp_path_factory, isic_root):
    root = tmp_path_factory.mktemp("coreml")
    return {p: export("coreml", p, out=root / p, data=isic_root, num_verify=32) for p in ("fp16", "int8")}


def _spec(result):
    return ct.models.MLModel(str(result.path), skip_model_load=True).get_spec()


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_coreml_spec(coreml_exports, precision):
    r = coreml_exports[precision]
    spec = _spec(r)
    assert spec.WhichOneof("Type") == "mlProgram"
    (inp,), (out,) = spec.description.input, spec.description.output
    assert inp.name == "image" and inp.type.WhichOneof("Type") == "imageType"
    assert (inp.type.imageType.width, inp.type.imageType.height) == (256, 256)
    assert inp.type.imageType.colorSpace == ct.proto.FeatureTypes_pb2.ImageFeatureType.RGB
    assert out.name == "logits" and list(out.type.multiArrayType.shape) == [1, 1, 256, 256]
    man = json.loads(r.manifest_path.read_text())
    ops = man["graph"]["coreml_ops"]
    assert "conv" in ops and "reshape" not in ops  # deploy rewrite: no GroupNorm reshapes
    if precision == "int8":
        # weight_threshold=0: every conv weight is int8 (the default would quantise only 7)
        assert ops.get("constexpr_affine_dequantize", 0) >= ops["conv"] - 10
    else:
        assert "constexpr_affine_dequantize" not in ops
    assert r.size_bytes < 600_000


def test_int8_weights_are_smaller_than_fp16(coreml_exports):
    assert coreml_exports["int8"].size_bytes < coreml_exports["fp16"].size_bytes


def test_parity_is_reported_as_macos_only_on_linux(coreml_exports):
    man = json.loads(coreml_exports["fp16"].manifest_path.read_text())
    if not ON_MAC:
        assert man["parity"]["iou"] is None and "macOS" in man["parity"]["skipped"]


@pytest.mark.skipif(not ON_MAC, reason="Core ML prediction needs macOS (the Core ML framework)")
def test_coreml_parity_on_macos(coreml_exports, isic_root):
    from egeunet.export.calibration import images_from_split
    from egeunet.runtimes import open_runtime

    torch_rt = open_runtime()
    rt = open_runtime(coreml_exports["fp16"].path)
    for img in images_from_split(isic_root, "test", 8, 256):
        agree = (rt.predict(img) >= 0.5) == (torch_rt.predict(img) >= 0.5)
        assert agree.mean() > 0.998
