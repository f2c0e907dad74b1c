import numpy as np
import pytest

from egeunet.metrics import SegmentationMeter, confusion, scores


def test_confusion_and_scores_on_a_known_case():
    truth = np.zeros((4, 4), bool)
    truth[:2] = True  # 8 positives
    pred = np.zeros((4, 4), bool)
    pred[1:3] = True  # 4 tp, 4 fp, 4 fn, 4 tn
    cm = confusion(pred, truth)
    assert cm.tolist() == [4, 4, 4, 4]
    s = scores(cm)
    assert s["dice"] == pytest.approx(0.5)
    assert s["iou"] == pytest.approx(1 / 3)
    assert s["acc"] == pytest.approx(0.5)
    assert s["sens"] == pytest.approx(0.5)
    assert s["spec"] == pytest.approx(0.5)


def test_pooled_differs_from_per_image_mean():
    big_t = np.ones((10, 10), bool)
    big_p = np.ones((10, 10), bool)  # perfect on a large lesion
    small_t = np.zeros((10, 10), bool)
    small_t[0, 0] = True
    small_p = np.zeros((10, 10), bool)  # misses a one-pixel lesion
    m = SegmentationMeter()
    m.update(np.stack([big_p, small_p]), np.stack([big_t, small_t]))
    r = m.result()
    assert r["n_images"] == 2
    assert r["per_image"]["dice"] == pytest.approx(0.5)
    assert r["pooled"]["dice"] == pytest.approx(200 / 201)


def test_empty_truth_and_prediction_count_as_perfect_and_shape_mismatch_is_reported():
    m = SegmentationMeter()
    m.update(np.zeros((5, 5), bool), np.zeros((5, 5), bool))
    assert m.result()["per_image"]["dice"] == 1.0
    with pytest.raises(ValueError, match="shape"):
        m.update(np.zeros((5, 5), bool), np.zeros((4, 5), bool))


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_more_images():
    from egeunet.metrics import bootstrap_ci

    rng = np.random.default_rng(0)
    meter = SegmentationMeter()
    for _ in range(200):
        t = rng.random((16, 16)) < rng.uniform(0.1, 0.5)
        p = t ^ (rng.random((16, 16)) < 0.1)  # 10 % of pixels flipped
        meter.update(p, t)
    ci = bootstrap_ci(meter.image_cms, n_boot=300, seed=1)
    lo, hi = ci["pooled"]["dice"]
    assert lo < meter.pooled()["dice"] < hi
    lo_small, hi_small = bootstrap_ci(meter.image_cms[:20], n_boot=300, seed=1)["pooled"]["dice"]
    assert (hi - lo) < (hi_small - lo_small)
