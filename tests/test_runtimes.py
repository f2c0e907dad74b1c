import numpy as np
import pytest

from egeunet.runtimes import open_runtime


def test_torch_runtime_predicts_a_mask_at_the_image_size(isic_root):
    from egeunet.preprocess import read_image

    img = read_image(sorted((isic_root / "images").glob("*.jpg"))[0])
    big = np.repeat(np.repeat(img, 2, axis=0), 3, axis=1)  # 512x768, another aspect ratio
    rt = open_runtime()
    prob = rt.predict(big)
    assert prob.shape == (256, 256) and 0.0 <= prob.min() and prob.max() <= 1.0
    mask = rt.predict_mask(big)
    assert mask.shape == (512, 768) and mask.dtype == bool and mask.any()


def test_open_runtime_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="no such model file"):
        open_runtime(tmp_path / "m.tflite")
    (tmp_path / "m.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="unknown model type '.bin'"):
        open_runtime(tmp_path / "m.bin")
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(ValueError, match="no manifest.json"):
        open_runtime(tmp_path / "m.onnx")
    (tmp_path / "d.tflite").mkdir()
    with pytest.raises(ValueError, match="d.tflite: a folder, not a model file"):
        open_runtime(tmp_path / "d.tflite")


def _onnx_with_manifest(folder, manifest_text):
    (folder / "egeunet_fp32.onnx").write_bytes(b"x")
    (folder / "manifest.json").write_bytes(manifest_text if isinstance(manifest_text, bytes) else manifest_text.encode())
    return folder / "egeunet_fp32.onnx"


@pytest.mark.parametrize("manifest, message", [
    ("{}", "manifest.json: not a complete manifest .no 'file', 'target', 'precision', 'io', 'preprocessing' entry"),
    ("[1]", "manifest.json: not a manifest .a JSON list, expected an object"),
    ("not json", "manifest.json: not valid JSON"),
    (b"\xff\xfe\x00binary", "manifest.json: not valid JSON"),
])
def test_malformed_manifest_is_named(manifest, message, tmp_path):
    model = _onnx_with_manifest(tmp_path, manifest)
    with pytest.raises(ValueError, match=message):
        open_runtime(model)


def test_manifest_of_another_export_in_the_same_folder_is_refused(tmp_path):
    """A second export into the same --out replaced manifest.json: it must not be applied to
    the first export's file."""
    import json

    from egeunet.model.checkpoint import PRETRAINED, sidecar_path

    sidecar = json.loads(sidecar_path(PRETRAINED).read_text())
    man = {"file": "egeunet_int8.tflite", "target": "tflite", "precision": "int8",
           "preprocessing": sidecar["preprocessing"],
           "io": {"input": {"name": "x", "shape": [1, 256, 256, 3], "dtype": "float32", "layout": "NHWC",
                            "values": "normalized"},
                  "output": {"name": "y", "shape": [1, 256, 256, 1], "dtype": "float32", "kind": "logits"}}}
    model = _onnx_with_manifest(tmp_path, json.dumps(man))
    with pytest.raises(ValueError, match="manifest.json describes 'egeunet_int8.tflite', not egeunet_fp32.onnx"):
        open_runtime(model)
    man["file"], man["io"] = "egeunet_fp32.onnx", {"input": {}}  # right file, broken io entry
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ValueError, match="egeunet_fp32.onnx: bad 'preprocessing' or 'io' entry"):
        open_runtime(model)


def test_thread_count_below_one_is_refused():
    with pytest.raises(ValueError, match="threads must be >= 1, not -1"):
        open_runtime(threads=-1)


def test_a_renamed_copy_beside_its_manifest_still_opens(tflite_exports, tmp_path, isic_root):
    """The manifest names the exported file; a renamed copy is recognised by its sha256 (an app
    bundling 'model.tflite'), while other bytes under the manifest are refused."""
    import shutil

    from egeunet.preprocess import read_image

    r, out = tflite_exports["fp32"]
    assert r.returncode == 0, r.stderr[-2000:]
    shutil.copy(out / "manifest.json", tmp_path / "manifest.json")
    shutil.copy(out / "egeunet_fp32.tflite", tmp_path / "model.tflite")
    img = read_image(sorted((isic_root / "images").glob("*.jpg"))[0])
    np.testing.assert_array_equal(open_runtime(tmp_path / "model.tflite").predict(img),
                                  open_runtime(out / "egeunet_fp32.tflite").predict(img))
    shutil.copy(tflite_exports["fp16"][1] / "egeunet_fp16.tflite", tmp_path / "other.tflite")
    with pytest.raises(ValueError, match="describes 'egeunet_fp32.tflite', not other.tflite"):
        open_runtime(tmp_path / "other.tflite")


@pytest.fixture(scope="module")
def torch_rt_and_photo():
    """The shipped weights and a synthetic dermoscopy photo of another size and aspect ratio."""
    from PIL import Image

    from egeunet.export.calibration import synthetic_dermoscopy

    img = np.asarray(Image.fromarray(synthetic_dermoscopy(1, 256, seed=3)[0]).resize((150, 110), Image.BILINEAR))
    rt = open_runtime()
    mask = rt.predict_mask(img)
    assert mask.shape == (110, 150) and 0.02 < mask.mean() < 0.98  # a mask that any wrong input would change
    return rt, img, mask


def test_other_image_forms_give_the_mask_of_the_same_rgb_uint8_image(torch_rt_and_photo):
    """Grey, RGBA, other pixel dtypes, PIL images, views and read-only arrays: the mask of the
    equivalent RGB uint8 image (they were broadcast errors, AttributeErrors or wrapped values)."""
    from PIL import Image

    rt, img, mask = torch_rt_and_photo
    readonly = img.copy()
    readonly.flags.writeable = False
    same = {
        "float64": img.astype(np.float64), "float32 +0.3": img.astype(np.float32) + 0.3 * (img < 255),
        "int64": img.astype(np.int64), "uint16 within 0..255": img.astype(np.uint16),
        "PIL RGB": Image.fromarray(img), "Fortran order": np.asfortranarray(img),
        "reversed view": img[:, ::-1][:, ::-1], "read-only": readonly,
    }
    for what, image in same.items():
        np.testing.assert_array_equal(rt.predict_mask(image), mask, err_msg=what)
        np.testing.assert_array_equal(rt.predict(image), rt.predict(img), err_msg=what)
    grey = np.asarray(Image.fromarray(img).convert("L"))
    grey_mask = rt.predict_mask(np.repeat(grey[:, :, None], 3, axis=2))
    for what, image in {"(H, W)": grey, "(H, W, 1)": grey[:, :, None], "PIL L": Image.fromarray(grey)}.items():
        np.testing.assert_array_equal(rt.predict_mask(image), grey_mask, err_msg=what)
    alpha = np.full(img.shape[:2], 255, np.uint8)
    alpha[:, :40] = 0  # transparent on the left: composited on black, as read_image does for files
    on_black = img.copy()
    on_black[:, :40] = 0
    np.testing.assert_array_equal(rt.predict_mask(np.dstack([img, alpha])), rt.predict_mask(on_black))
    tiny = rt.predict_mask(img[:1, :1])
    assert tiny.shape == (1, 1) and tiny.dtype == bool


@pytest.mark.parametrize("make, message", [
    (lambda im: im.astype(np.float32) / 255, r"values within 0\.\.1 .*\* 255"),
    (lambda im: im.astype(np.uint16) << 8, r"within 0\.\.255, got .*uint16.*8 bits"),
    (lambda im: im.astype(np.int16) - 256, r"within 0\.\.255, got -\d+\.\."),
    (lambda im: np.where(im > 100, np.nan, im.astype(np.float32)), "NaN"),
    (lambda im: im > 128, "boolean array is a mask"),
    (lambda im: im.transpose(2, 0, 1), r"channels-first .*transpose\(1, 2, 0\)"),
    (lambda im: im[None], "batch of shape .1, 110, 150, 3."),
    (lambda im: np.stack([im, im]), "batch"),
    (lambda im: im[:0], "empty image"),
    (lambda im: np.dstack([im, im]), r"got shape \(110, 150, 6\)"),
    (lambda im: im.astype(str), "<U"),
])
def test_inputs_that_would_give_a_wrong_mask_are_refused_by_name(torch_rt_and_photo, make, message):
    rt, img, _ = torch_rt_and_photo
    for call in (rt.predict, rt.predict_mask, rt.prepare):
        with pytest.raises(ValueError, match=message):
            call(make(img))


def test_litert_runtime_serialises_calls_from_several_threads(monkeypatch, tmp_path):
    """One interpreter holds one input and one output buffer: threads sharing a runtime must
    take turns (LiteRT raised 'at least 1 reference to internal data', or returned another
    call's output)."""
    import threading
    import time

    from egeunet.preprocess import Preprocessing
    from egeunet.runtimes import IOSpec, litert_runtime

    class FakeInterpreter:  # records overlapping calls; the "model" returns its input's first pixel
        def __init__(self, model_path, num_threads):
            self.busy, self.overlaps, self.x = False, 0, None

        def allocate_tensors(self):
            pass

        def get_input_details(self):
            return [{"index": 0, "name": "image", "shape": np.array([1, 32, 32, 3]), "dtype": np.float32}]

        def get_output_details(self):
            return [{"index": 1, "name": "logits", "shape": np.array([1, 32, 32, 1]), "dtype": np.float32}]

        def set_tensor(self, index, x):
            self.overlaps += self.busy
            self.busy, self.x = True, x

        def invoke(self):
            time.sleep(0.002)

        def get_tensor(self, index):
            y = np.full((1, 1, 32, 32), self.x.flat[0], np.float32)
            self.busy = False
            return y

    monkeypatch.setattr(litert_runtime, "load_interpreter_class", lambda: FakeInterpreter)
    pre = Preprocessing(size=32)
    spec = IOSpec("image", (1, 32, 32, 3), "float32", "NHWC", "pixels", "logits", (1, 32, 32, 1), "float32", "logits")
    rt = litert_runtime.LiteRTRuntime(tmp_path / "m.tflite", manifest={"preprocessing": pre.to_dict(),
                                                                       "io": spec.to_dict()})
    wrong = []

    def work(k):
        for v in range(k * 10, k * 10 + 10):
            y = rt.logits_or_probs(np.full((32, 32, 3), v, np.uint8))
            if not (y == v).all():
                wrong.append(v)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert rt.interpreter.overlaps == 0 and not wrong


def _tiny_tflite(size: int = 32) -> bytes:
    """A real .tflite of a few hundred bytes: one 1x1 convolution from RGB pixels to a logit map."""
    flatbuffers = pytest.importorskip("flatbuffers")
    s = pytest.importorskip("ai_edge_litert.schema_py_generated")

    def buffer(values=None):
        b = s.BufferT()
        b.data = None if values is None else np.frombuffer(np.asarray(values, np.float32).tobytes(), np.uint8)
        return b

    def tensor(name, shape, buf):
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer = name, shape, s.TensorType.FLOAT32, buf
        return t

    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.CONV_2D
    code.version = 1
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, 2], [3]
    op.builtinOptionsType, op.builtinOptions = s.BuiltinOptions.Conv2DOptions, s.Conv2DOptionsT()
    op.builtinOptions.strideH = op.builtinOptions.strideW = 1
    g = s.SubGraphT()
    g.inputs, g.outputs, g.operators = [0], [3], [op]
    g.tensors = [tensor(b"image", [1, size, size, 3], 1), tensor(b"w", [1, 1, 1, 3], 2), tensor(b"b", [1], 3),
                 tensor(b"logits", [1, size, size, 1], 4)]
    m = s.ModelT()
    m.version, m.operatorCodes, m.subgraphs = 3, [code], [g]
    m.buffers = [buffer(), buffer(), buffer([0.01, -0.02, 0.005]), buffer([0.1]), buffer()]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_a_truncated_tflite_is_refused_naming_the_file(tmp_path):
    """LiteRT reads a .tflite without bounds checks: a file cut short (an interrupted copy or
    download) crashed the process (SIGSEGV, seen with the shipped fp32 export cut at 100 KB)
    or, cut elsewhere, opened as a different, silently wrong model."""
    from egeunet.preprocess import Preprocessing
    from egeunet.runtimes.base import IOSpec

    data = _tiny_tflite()
    spec = IOSpec("image", (1, 32, 32, 3), "float32", "NHWC", "pixels", "logits", (1, 32, 32, 1), "float32", "logits")
    man = {"preprocessing": Preprocessing(size=32).to_dict(), "io": spec.to_dict()}
    (tmp_path / "whole.tflite").write_bytes(data)
    rt = open_runtime(tmp_path / "whole.tflite", manifest=man)
    assert rt.predict_mask(np.full((20, 30, 3), 100, np.uint8)).shape == (20, 30)  # the check lets good files by
    opened, errors = [], []  # cuts that opened as a model; the messages of the others
    for cut in range(8, len(data), 4):
        path = tmp_path / f"cut{cut}.tflite"
        path.write_bytes(data[:cut])
        try:
            open_runtime(path, manifest=man)
            opened.append(cut)
        except ValueError as e:
            errors.append((cut, str(e)))
    assert opened == []
    for cut, message in errors:
        assert f"cut{cut}.tflite: not a complete .tflite file (cut short or corrupt" in message


def _split_tflite(num_splits: int, axis: int = 3) -> bytes:
    """A complete, well-formed .tflite whose one op SPLITs the RGB image into ``num_splits`` parts
    along its channel axis, into three tensors; the first (R) is the output. With 0 splits LiteRT
    dies with SIGSEGV (ai-edge-litert 2.x); a page of a real export zeroed on disk did the same
    (zeroed tables read as 0 splits)."""
    flatbuffers = pytest.importorskip("flatbuffers")
    s = pytest.importorskip("ai_edge_litert.schema_py_generated")

    def buffer(values=None, dtype=np.float32):
        b = s.BufferT()
        b.data = None if values is None else np.frombuffer(np.asarray(values, dtype).tobytes(), np.uint8)
        return b

    def tensor(name, shape, buf, kind=s.TensorType.FLOAT32):
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer = name, shape, kind, buf
        return t

    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.SPLIT
    code.version = 1
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [1, 0], [2, 3, 4]
    op.builtinOptionsType, op.builtinOptions = s.BuiltinOptions.SplitOptions, s.SplitOptionsT()
    op.builtinOptions.numSplits = num_splits
    g = s.SubGraphT()
    g.inputs, g.outputs, g.operators = [0], [2], [op]
    g.tensors = [tensor(b"image", [1, 32, 32, 3], 1), tensor(b"axis", [], 2, s.TensorType.INT32),
                 tensor(b"logits", [1, 32, 32, 1], 3), tensor(b"g", [1, 32, 32, 1], 4), tensor(b"b", [1, 32, 32, 1], 5)]
    m = s.ModelT()
    m.version, m.operatorCodes, m.subgraphs = 3, [code], [g]
    m.buffers = [buffer(), buffer(), buffer([axis], np.int32), buffer(), buffer(), buffer()]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_a_tflite_that_crashes_litert_is_refused_not_a_crash(tmp_path, monkeypatch):
    """A file other than the one its manifest was written for is first loaded and run once in a
    separate process: a crash there is a ValueError naming the file, not the end of ours."""
    import hashlib
    import json

    from egeunet.preprocess import Preprocessing
    from egeunet.runtimes.base import IOSpec

    spec = IOSpec("image", (1, 32, 32, 3), "float32", "NHWC", "pixels", "logits", (1, 32, 32, 1), "float32", "logits")
    man = {"file": "m.tflite", "target": "tflite", "precision": "fp32",
           "preprocessing": Preprocessing(size=32).to_dict(), "io": spec.to_dict()}
    good, bad = _split_tflite(3), _split_tflite(0)
    path = tmp_path / "m.tflite"
    path.write_bytes(bad)
    with pytest.raises(ValueError, match=r"m.tflite: LiteRT crashes on this file \(SIGSEGV"):
        open_runtime(path, manifest=man)
    # the same bytes under a manifest written for them are opened directly (no child process)
    path.write_bytes(good)
    (tmp_path / "manifest.json").write_text(json.dumps(dict(man, sha256=hashlib.sha256(good).hexdigest())))
    from egeunet.runtimes import litert_runtime

    probed = []
    real_probe = litert_runtime.probe_in_child
    monkeypatch.setattr(litert_runtime, "probe_in_child", lambda p, *a: probed.append(p) or real_probe(p, *a))
    assert open_runtime(path).logits_or_probs(np.zeros((32, 32, 3), np.uint8)).shape == (32, 32)
    assert probed == []
    path.write_bytes(bad)  # replaced after export: probed, refused
    with pytest.raises(ValueError, match="LiteRT crashes on this file"):
        open_runtime(path)
    assert probed == [path]


def test_a_tflite_litert_rejects_is_refused_with_litert_s_reason(tmp_path):
    """A file LiteRT rejects without crashing: the child's last error line is the message."""
    from egeunet.preprocess import Preprocessing
    from egeunet.runtimes.base import IOSpec

    spec = IOSpec("image", (1, 32, 32, 3), "float32", "NHWC", "pixels", "logits", (1, 32, 32, 1), "float32", "logits")
    man = {"preprocessing": Preprocessing(size=32).to_dict(), "io": spec.to_dict()}
    path = tmp_path / "axis7.tflite"
    path.write_bytes(_split_tflite(3, axis=7))  # an axis the 4-d image does not have
    with pytest.raises(ValueError, match=r"axis7.tflite: LiteRT cannot run it \(RuntimeError: .*failed to prepare"):
        open_runtime(path, manifest=man)


def test_thread_count_of_another_type_is_refused_by_name():
    for bad in ("2", 2.5, True):
        with pytest.raises(ValueError, match="threads must be an integer, not"):
            open_runtime(threads=bad)


def _tiny_onnx(path, output_name="logits"):
    """A real ONNX file with the export's interface: image (1, 3, 256, 256) float32 -> a
    (1, 1, 256, 256) map (the channel mean)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image"], [output_name], axes=[1], keepdims=1)], "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 256, 256])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [1, 1, 256, 256])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))


def test_a_file_that_does_not_match_its_manifest_is_refused(tmp_path):
    """A manifest left beside a replaced file of the same name: a probs manifest over a logits
    file gave logits as 'probabilities' (a wrong mask, no error); the check names the mismatch."""
    import json

    pytest.importorskip("onnxruntime")
    from egeunet.export.onnx_export import onnx_io_spec
    from egeunet.model.checkpoint import PRETRAINED, sidecar_path

    pre = json.loads(sidecar_path(PRETRAINED).read_text())["preprocessing"]
    model = tmp_path / "egeunet_fp32.onnx"
    _tiny_onnx(model)

    def manifest(io):
        (tmp_path / "manifest.json").write_text(json.dumps(
            {"file": model.name, "target": "onnx", "precision": "fp32", "preprocessing": pre, "io": io}))

    manifest(onnx_io_spec(256, "logits").to_dict())
    assert open_runtime(model).predict(np.zeros((20, 30, 3), np.uint8)).shape == (256, 256)  # the true manifest
    manifest(onnx_io_spec(256, "probs").to_dict())
    with pytest.raises(ValueError, match=r"does not match its manifest: output 'logits' .* \(manifest: 'probs'"):
        open_runtime(model)
    io = onnx_io_spec(256, "logits").to_dict()
    io["input"]["dtype"], io["input"]["shape"] = "uint8", [1, 256, 256, 3]
    manifest(io)
    with pytest.raises(ValueError, match=r"input 'image' \[1, 3, 256, 256\] float32 \(manifest: 'image' "
                                         r"\[1, 256, 256, 3\] uint8\)"):
        open_runtime(model)


def test_litert_refuses_an_int8_full_file_under_a_float_manifest(tflite_exports, tmp_path):
    """The same name, other bytes: the uint8-input file was fed under the fp32 contract."""
    import shutil

    for precision in ("fp32", "int8-full"):
        assert tflite_exports[precision][0].returncode == 0, tflite_exports[precision][0].stderr[-2000:]
    shutil.copy(tflite_exports["fp32"][1] / "manifest.json", tmp_path / "manifest.json")
    shutil.copy(tflite_exports["int8-full"][1] / "egeunet_int8-full.tflite", tmp_path / "egeunet_fp32.tflite")
    with pytest.raises(ValueError, match=r"does not match its manifest: input 'image' \[1, 256, 256, 3\] uint8 "
                                         r"\(manifest: 'image' \[1, 256, 256, 3\] float32\)"):
        open_runtime(tmp_path / "egeunet_fp32.tflite")


def test_a_file_whose_bytes_differ_from_its_manifest_is_warned_about(tmp_path, caplog):
    """Same name and interface, other bytes (a file re-saved or edited after export): it runs,
    but the manifest's parity figures describe the old file, and the user is told so."""
    import json

    pytest.importorskip("onnxruntime")
    from egeunet.export.onnx_export import onnx_io_spec
    from egeunet.model.checkpoint import PRETRAINED, file_sha256, sidecar_path

    pre = json.loads(sidecar_path(PRETRAINED).read_text())["preprocessing"]
    model = tmp_path / "egeunet_fp32.onnx"
    _tiny_onnx(model)
    manifest = {"file": model.name, "target": "onnx", "precision": "fp32", "preprocessing": pre,
                "io": onnx_io_spec(256, "logits").to_dict(), "sha256": file_sha256(model)}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with caplog.at_level("WARNING", logger="egeunet.runtimes.base"):
        open_runtime(model)
    assert "its bytes are not those" not in caplog.text  # the exported file itself: nothing to say
    import onnx

    edited = onnx.load(str(model))
    edited.doc_string = "edited after export"  # the same graph, other bytes
    onnx.save(edited, str(model))
    with caplog.at_level("WARNING", logger="egeunet.runtimes.base"):
        rt = open_runtime(model)
    assert rt.predict(np.zeros((20, 30, 3), np.uint8)).shape == (256, 256)
    assert "its bytes are not those manifest.json was written for" in caplog.text
