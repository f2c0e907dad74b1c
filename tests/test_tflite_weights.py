"""The int8 file's weight storage: norm-statistics matrices stay exact through TensorFlow's
dynamic-range quantizer and through int8 storage (``egeunet.export.tflite_compact``)."""

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="TFLite export needs the export extra: pip install -e '.[export]'")

from egeunet.export.tflite_compact import (  # noqa: E402
    compact, float_weights_to_int8, lattice_int8, restore_float_weights)


def _group_centring(c: int, group: int) -> np.ndarray:
    gid = np.arange(c) // group
    return np.eye(c) - (gid[:, None] == gid[None, :]) / group  # (in, out), symmetric


def test_lattice_int8_reproduces_multiples_of_one_over_group_and_refuses_others():
    w = _group_centring(68, 17).astype(np.float32).T[:, None, None, :]  # TFLite (O, 1, 1, I)
    q, step = lattice_int8(w, 0)
    assert q.dtype == np.int8 and step.shape == (68,)
    deq = q.astype(np.float32) * step[:, None, None, None]
    assert np.abs(deq - w).max() <= 2 * np.finfo(np.float32).eps  # float rounding, not a 1/127 grid
    assert set(np.unique(q)) == {-1, 0, 16}  # (I - J/17) * 17
    assert lattice_int8(np.random.default_rng(0).normal(size=(8, 1, 1, 8)).astype(np.float32), 0) is None


def _tiny_norm_model(tmp_path, c=40, group=10):
    """A 1x1 conv with a 40x40 group-centring matrix (1,600 weights: TensorFlow's dynamic-range
    quantizer takes it) followed by a 3x3 conv of ordinary weights, dynamic-range converted."""
    import tensorflow as tf

    centre = _group_centring(c, group).astype(np.float32)
    other = np.random.default_rng(0).normal(size=(3, 3, c, c)).astype(np.float32) * 0.1

    @tf.function(input_signature=[tf.TensorSpec([1, 16, 16, c], tf.float32)])
    def f(x):
        return tf.nn.conv2d(tf.nn.conv2d(x, centre[None, None], 1, "VALID"), other, 1, "SAME")

    conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    raw = tmp_path / "raw.tflite"
    raw.write_bytes(conv.convert())
    compact(raw, raw)
    x = np.random.default_rng(1).normal(size=(1, 16, 16, c)).astype(np.float32) + 5.0  # a large mean to remove
    return raw, np.ascontiguousarray(centre.T[:, None, None, :]), x, x[0] @ centre


def _run(path, x, tensor_shape=None):
    """(dtypes of the tensors shaped like the centring weights, the centring conv's output)."""
    import warnings

    from egeunet.runtimes.litert_runtime import load_interpreter_class

    with warnings.catch_warnings():  # "preserve_all_tensors ... for debugging": what this is
        warnings.simplefilter("ignore")
        it = load_interpreter_class()(model_path=str(path), experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    types = {np.dtype(t["dtype"]).name for t in it.get_tensor_details() if tuple(t["shape"]) == tensor_shape}
    first_conv = next(op for op in it._get_ops_details() if op["op_name"] == "CONV_2D")
    return types, it.get_tensor(first_conv["outputs"][0])


def test_norm_weights_restored_from_hybrid_int8_and_stored_exactly(tmp_path):
    raw, w, x, centred_ref = _tiny_norm_model(tmp_path)
    types, centred = _run(raw, x, w.shape)
    assert "int8" in types  # TensorFlow made the centring conv a hybrid int8 conv ...
    assert np.abs(centred[0] - centred_ref).max() > 1e-3  # ... which centres only roughly

    fixed = tmp_path / "fixed.tflite"
    assert restore_float_weights(raw, fixed, [w])["tensors"] == 1
    types, centred = _run(fixed, x, w.shape)
    assert types == {"float32"} and np.abs(centred[0] - centred_ref).max() < 1e-5

    stored = tmp_path / "stored.tflite"
    out = float_weights_to_int8(fixed, stored, keep=[w])
    assert out["tensors"] == 1 and out["bytes_after"] < fixed.stat().st_size - 4000  # 1,600 float32 -> int8
    _, centred = _run(stored, x)
    assert np.abs(centred[0] - centred_ref).max() < 1e-5  # stored int8, still exact
    # without `keep` the same storage uses the max/127 grid: visibly inexact
    plain = tmp_path / "plain.tflite"
    float_weights_to_int8(fixed, plain)
    _, centred = _run(plain, x)
    assert np.abs(centred[0] - centred_ref).max() > 1e-3


def test_int8_storage_skips_a_kernel_whose_small_input_channel_int8_would_wipe_out():
    """A folded norm scale can leave one input channel of a kernel tiny next to the others; one
    int8 scale per output channel then rounds that channel to almost nothing (EGE-UNet-BN: mask
    IoU vs PyTorch 0.992 -> 0.959). Such a weight stays float32; ordinary ones are stored."""
    from egeunet.export.tflite_compact import MAX_INT8_SLICE_ERROR, int8_slice_error

    rng = np.random.default_rng(0)
    ordinary = rng.normal(size=(8, 1, 1, 20)).astype(np.float32)
    skewed = ordinary.copy()
    skewed[..., 19] *= 1e-3
    assert int8_slice_error(ordinary, 0) < 0.02 < MAX_INT8_SLICE_ERROR < int8_slice_error(skewed, 0)
