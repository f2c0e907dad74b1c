"""TFLite fp32 / fp16 / int8 / int8-full from the shipped weights via the CLI; the NHWC graph
against PyTorch; the flatbuffer compaction; the onnx2tf route and its traps."""

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="TFLite export needs the export extra: pip install -e '.[export]'")

from egeunet.export.calibration import images_from_split  # noqa: E402
from egeunet.export.tflite_export import ONNX2TF_SAMPLE, write_onnx2tf_sample  # noqa: E402
from egeunet.runtimes import open_runtime  # noqa: E402


@pytest.mark.parametrize("precision, min_iou", [("fp32", 0.999), ("fp16", 0.998)])
def test_float_tflite_parity(tflite_exports, precision, min_iou):
    r, out = tflite_exports[precision]
    assert r.returncode == 0, r.stderr[-3000:]
    man = json.loads((out / "manifest.json").read_text())
    assert man["precision"] == precision and (out / man["file"]).suffix == ".tflite"
    assert man["parity"]["n_images"] >= 32 and man["parity"]["iou"] >= min_iou, man["parity"]
    assert man["io"]["input"]["values"] == "pixels" and man["io"]["input"]["layout"] == "NHWC"
    assert "parity" in r.stdout and "bytes" in r.stdout  # the one-line summary


def test_int8_is_accurate_smaller_than_fp32_and_takes_float_pixels(tflite_exports):
    sizes = {}
    for precision in ("fp32", "fp16", "int8"):
        r, out = tflite_exports[precision]
        assert r.returncode == 0, r.stderr[-3000:]
        man = json.loads((out / "manifest.json").read_text())
        sizes[precision] = man["bytes"]
    assert man["parity"]["iou"] >= 0.99 and man["parity"]["n_images"] >= 32, man["parity"]  # the format's gate
    assert man["io"]["input"]["dtype"] == "float32" and man["io"]["input"]["values"] == "pixels"
    assert "dynamic range" in man["quantization"]["scheme"]
    stored = man["quantization"]["float_weights_stored_int8"]  # what the quantizer left float32
    assert stored["tensors"] > 0 and stored["bytes_after"] < stored["bytes_before"] - 30_000, stored
    assert sizes["int8"] < sizes["fp16"] < sizes["fp32"], sizes
    # what the scheme claims, counted in the file with LiteRT (not the exporter's flatbuffer reader)
    assert man["quantization"]["conv_weights"] == _conv_weight_kinds(out / man["file"]), man["quantization"]


def _conv_weight_kinds(path) -> dict:
    from egeunet.runtimes.litert_runtime import load_interpreter_class

    interp = load_interpreter_class()(model_path=str(path))
    dtype = {t["index"]: np.dtype(t["dtype"]).name for t in interp.get_tensor_details()}
    ops = interp._get_ops_details()
    dequantized = {op["outputs"][0] for op in ops if op["op_name"] == "DEQUANTIZE"}
    kinds = {"int8": 0, "int8_dequantized": 0, "float32": 0}
    for op in ops:
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = op["inputs"][1]
            kinds["int8" if dtype[w] == "int8" else "int8_dequantized" if w in dequantized else "float32"] += 1
    return kinds


def test_probs_export_names_its_output_probs(tmp_path, isic_root):
    """--output probs: the TFLite output tensor was still named 'logits' (the ONNX and Core ML
    files name it 'probs'), and the manifest repeated that name beside kind 'probs'."""
    from egeunet.export import export

    r = export("tflite", "fp32", out=tmp_path, output="probs", data=isic_root, num_verify=2)
    man = json.loads(r.manifest_path.read_text())
    rt = open_runtime(r.path)
    assert rt.interpreter.get_output_details()[0]["name"] == man["io"]["output"]["name"] == "probs"
    assert man["io"]["output"]["kind"] == "probs" and man["threshold"]["on_output"] == 0.5
    p = rt.logits_or_probs(images_from_split(isic_root, "test", 1, 256)[0])
    assert 0.0 <= p.min() and p.max() <= 1.0 and p.max() > 0.5  # probabilities, a lesion in it


def test_int8_full_takes_uint8_pixels_and_reports_parity(tflite_exports):
    r, out = tflite_exports["int8-full"]
    assert r.returncode == 0, r.stderr[-3000:]
    man = json.loads((out / "manifest.json").read_text())
    assert man["io"]["input"]["dtype"] == "uint8"
    assert man["parity"]["iou"] >= 0.90  # the format's default gate (the fixture exports with --min-iou 0)
    assert man["calibration"]["n_images"] == 100 and "train split" in man["calibration"]["images"]
    assert set(man["quantization"]["float_ops"]) == {"GELU", "RSQRT", "ADD"}
    float_op_count = sum(n for op, n in man["graph"]["tflite_ops"].items() if op in ("GELU", "RSQRT", "ADD"))
    assert man["quantization"]["n_float_ops"] == float_op_count > 0
    q = man["io"]["input"]["quantization"]
    assert q is not None and abs(q["scale"] - 1.0) < 0.02 and abs(q["zero_point"]) <= 1  # raw pixels


def test_no_flex_ops_and_runtime_agrees_with_manifest(tflite_exports, isic_root):
    imgs = images_from_split(isic_root, "test", 3, 256)
    torch_rt = open_runtime()
    for precision, (r, out) in tflite_exports.items():
        assert r.returncode == 0, r.stderr[-2000:]
        man = json.loads((out / "manifest.json").read_text())
        ops = man["graph"]["tflite_ops"]
        assert ops and not [o for o in ops if "FLEX" in o.upper() or "CUSTOM" in o.upper()], ops
        rt = open_runtime(out / man["file"])  # LiteRT without the Flex delegate
        for img in imgs:
            agree = (rt.predict(img) >= 0.5) == (torch_rt.predict(img) >= 0.5)
            assert agree.mean() > (0.99 if precision != "int8-full" else 0.9)


def test_onnx2tf_sample_file_is_provided_locally(tmp_path):
    path = write_onnx2tf_sample(tmp_path)
    assert path.name == ONNX2TF_SAMPLE
    arr = np.load(path)
    assert arr.shape == (20, 128, 128, 3) and arr.dtype == np.float32
    assert 0.0 <= arr.min() and arr.max() <= 1.0


def test_predict_cli_runs_the_int8_tflite(tflite_exports, isic_root, tmp_path):
    r, out = tflite_exports["int8"]
    assert r.returncode == 0, r.stderr[-2000:]
    model = next(out.glob("*.tflite"))
    img = sorted((isic_root / "images").glob("*.jpg"))[1]
    p = subprocess.run([sys.executable, "-m", "egeunet", "predict", str(img), "--model", str(model), "--out", "o"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert (tmp_path / "o" / f"{img.stem}_mask.png").exists() and "lesion" in p.stdout


def test_nhwc_graph_matches_pytorch_on_real_images(isic_root):
    from egeunet.export.calibration import images_from_split
    from egeunet.export.tf_graph import TFEGEUNet
    from egeunet.export.verify import reference_logits
    from egeunet.model.checkpoint import load_checkpoint

    model, pre, _ = load_checkpoint(None)
    imgs = images_from_split(isic_root, "test", 4, pre.size)
    ref = reference_logits(model, imgs, pre)
    graph = TFEGEUNet(model, pre)
    got = np.concatenate([graph(im[None].astype(np.float32)).numpy()[..., 0] for im in imgs])
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < 1e-4


def test_nhwc_graph_stays_exact_on_other_images(kvasir_root):
    """Polyp photos (another data set, as a user's own data would be) through the shipped
    weights: the first GroupNorm's spatial mean over 256x256 as one float32 MEAN drifted by
    ~1e-5 relative, and the logits by 2.4e-3 in TF (3.8e-2 in the converted .tflite on 64
    images) where PyTorch's float32 stays within 1e-5 of float64. Two-level means keep the
    graph within 1e-4."""
    from egeunet.export.calibration import images_from_split
    from egeunet.export.tf_graph import TFEGEUNet
    from egeunet.export.verify import reference_logits
    from egeunet.model.checkpoint import load_checkpoint

    model, pre, _ = load_checkpoint(None)
    imgs = images_from_split(kvasir_root, "test", 16, pre.size)
    ref = reference_logits(model, imgs, pre)
    graph = TFEGEUNet(model, pre)
    got = np.concatenate([graph(im[None].astype(np.float32)).numpy()[..., 0] for im in imgs])
    assert np.abs(got - ref).max() < 1e-4


def test_compaction_shrinks_the_file_and_changes_no_output(tflite_exports, tmp_path, isic_root):
    from egeunet.export.tflite_compact import compact
    from egeunet.runtimes.litert_runtime import load_interpreter_class

    r, out = tflite_exports["int8-full"]
    assert r.returncode == 0, r.stderr[-2000:]
    man = json.loads((out / "manifest.json").read_text())
    assert man["compaction"]["bytes_after"] < man["compaction"]["bytes_before"] - 10_000
    # compacting again must change nothing a runtime sees (outputs bit-identical) and keep the io names
    again = tmp_path / "again.tflite"
    compact(out / man["file"], again)
    img = images_from_split(isic_root, "test", 1, 256)[0][None]
    outs = []
    for path in (out / man["file"], again):
        it = load_interpreter_class()(model_path=str(path))
        it.allocate_tensors()
        i, o = it.get_input_details()[0], it.get_output_details()[0]
        assert (i["name"], o["name"]) == ("image", "logits")
        it.set_tensor(i["index"], img.astype(i["dtype"]))
        it.invoke()
        outs.append(it.get_tensor(o["index"]).copy())
    assert np.array_equal(*outs)
    names = {t["name"] for t in it.get_tensor_details()}
    assert names == {"image", "logits", ""}, sorted(names)[:5]  # no names but the io ones
    from tensorflow.lite.tools import flatbuffer_utils as fu

    tensors = fu.read_model(str(again)).subgraphs[0].tensors
    assert not any(t.hasRank for t in tensors if len(t.shape))  # flags a shape already implies
    assert all(t.quantization is None or len(t.quantization.scale) for t in tensors)  # no empty tables


def test_onnx2tf_route_still_converts_with_parity(isic_root, tmp_path):
    """The comparison route: our ONNX file through onnx2tf (slower to convert, larger file)."""
    pytest.importorskip("onnx2tf", reason="the onnx2tf route needs the export extra")
    env = dict(__import__("os").environ, PATH="/usr/bin:/bin", EGEUNET_DATA=str(isic_root))
    r = subprocess.run([sys.executable, "-m", "egeunet", "export", "--target", "tflite", "--converter", "onnx2tf",
                        "--out", str(tmp_path / "o"), "--num-verify", "16"], capture_output=True, text=True,
                       env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    man = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert man["converter"] == "onnx2tf" and man["parity"]["iou"] >= 0.999


@pytest.mark.parametrize("overrides", [dict(deep_supervision=False), dict(bridge=False),
                                       dict(widths=(8, 8, 16, 16, 24, 24))])
def test_nhwc_graph_follows_every_config(overrides):
    """Variants a user may train: no mask-guided bridges, no bridges, other widths; random
    weights and norms perturbed so every affine matters; a 128x128 input."""
    import torch

    from egeunet.model import egeunet

    torch.manual_seed(0)
    model = egeunet(**overrides).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith(("weight", "bias")) and p.ndim == 1:
                p.add_(0.3 * torch.randn_like(p))
    got, ref, _ = _graph_and_torch_logits(model, seed=0)
    assert np.abs(got - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())


def _graph_and_torch_logits(model, seed: int):
    """(TF graph logits, PyTorch logits, the graph) for two random 128x128 pixel images."""
    import torch

    from egeunet.export.tf_graph import TFEGEUNet
    from egeunet.preprocess import Preprocessing

    pre = Preprocessing(size=128, mean=(181.0, 146.0, 133.0), std=(38.0, 43.0, 46.0))
    pixels = np.random.default_rng(seed).integers(0, 256, (2, 128, 128, 3)).astype(np.float32)
    x = torch.from_numpy((pixels - np.array(pre.mean, np.float32)) / np.array(pre.std, np.float32)).permute(0, 3, 1, 2)
    with torch.no_grad():
        ref = model(x)[:, 0].numpy()
    graph = TFEGEUNet(model, pre)
    return np.concatenate([graph(p[None]).numpy()[..., 0] for p in pixels]), ref, graph


def test_nhwc_graph_pools_before_the_group_norm_affine_whatever_its_sign():
    """The encoder's GroupNorm affine runs after the max-pool, which commutes with it only for
    scales >= 0: channels with a negative weight (mixed with positive ones in one group, and
    a whole negative group) are negated first. The bridges' conv-computed LayerNorms run on
    the 64x64 map, the MEAN-based ones below it; all within float rounding of PyTorch."""
    import torch

    from egeunet.export.tf_graph import CONV_NORM_MIN_HW
    from egeunet.model import egeunet

    torch.manual_seed(1)
    model = egeunet().eval()
    with torch.no_grad():
        for gn in model.encoder_norms:
            gn.weight.copy_(torch.linspace(-1.5, 1.2, gn.num_channels)[torch.randperm(gn.num_channels)])
            gn.weight[: gn.num_channels // 4] = -gn.weight[: gn.num_channels // 4].abs()  # group 0 all negative
            gn.bias.uniform_(-0.5, 0.5)
    assert all((gn.weight < 0).any() and (gn.weight > 0).any() for gn in model.encoder_norms)
    got, ref, graph = _graph_and_torch_logits(model, seed=1)
    assert np.abs(got - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())
    # gab4 (the 64x64 skip of a 128x128 input) took the conv path: its centring matrix (17 in, 20 out)
    assert CONV_NORM_MIN_HW == 64 and any(w.shape == (20, 1, 1, 17) for w in graph.norm_weights)


def test_nhwc_graph_of_the_batchnorm_variant_folds_norms_and_matches_pytorch():
    """EGE-UNet-BN: every BatchNorm folded or reduced to MUL/ADD, same function as PyTorch."""
    import torch

    from egeunet.export.tf_graph import TFEGEUNet
    from egeunet.model import egeunet
    from egeunet.preprocess import Preprocessing

    torch.manual_seed(0)
    model = egeunet(norms="batch").eval()
    with torch.no_grad():  # trained-looking statistics and affines, so nothing folds trivially
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.3, 2.0)
    pre = Preprocessing(size=64, mean=(180.0, 150.0, 140.0), std=(40.0, 45.0, 50.0))
    rng = np.random.default_rng(0)
    pixels = rng.uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    with torch.no_grad():
        x = (torch.from_numpy(pixels) - torch.tensor(pre.mean)) / torch.tensor(pre.std)
        ref = model(x.permute(0, 3, 1, 2).float()).numpy()[:, 0]
    graph = TFEGEUNet(model, pre)
    got = np.concatenate([graph(p[None]).numpy()[..., 0] for p in pixels])
    assert np.abs(got - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())
    ops = {op.type for op in graph.concrete_function().graph.get_operations()}
    assert not ops & {"Mean", "Rsqrt"}, ops  # no normalisation arithmetic left in the graph
