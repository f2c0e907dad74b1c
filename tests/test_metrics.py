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


def test_masks_of_other_shapes_are_refused_not_broadcast():
    """(4, 4) against (4,) or (1, 4) broadcast to a confusion matrix of the wrong pixel count
    (tn was -12 for (4, 1) vs (1, 4))."""
    from egeunet.metrics import confusion

    ones = np.ones((4, 4), bool)
    for other in (np.ones(4, bool), np.ones((1, 4), bool)):
        with pytest.raises(ValueError, match="shape"):
            confusion(ones, other)
    with pytest.raises(ValueError, match=r"prediction shape \(4, 1\) differs from truth shape \(1, 4\)"):
        confusion(np.ones((4, 1), bool), np.ones((1, 4), bool))
    with pytest.raises(ValueError, match=r"\(H, W\) or a stack"):
        SegmentationMeter().update(np.zeros(5, bool), np.zeros(5, bool))  # was 5 "images" of one pixel


def test_non_binary_masks_are_refused_and_0_255_masks_are_binary():
    """A probability map passed as a mask counted every pixel > 0 as lesion: Dice 1.0 here."""
    truth = np.zeros((4, 4), bool)
    truth[:2] = True
    prob = np.where(truth, 0.9, 0.2).astype(np.float32)
    with pytest.raises(ValueError, match=r"prediction is not a binary mask \(float32 .*threshold it first, e\.g\. "
                       r"prob >= 0\.5"):
        confusion(prob, truth)
    with pytest.raises(ValueError, match="truth is not a binary mask"):
        SegmentationMeter().update(truth, truth.astype(np.uint8) * 3)
    expected = confusion(truth, truth).tolist()
    assert confusion(truth.astype(np.uint8) * 255, truth.astype(np.float32)).tolist() == expected == [8, 0, 0, 8]


def test_no_image_gives_nan_everywhere_and_bootstrap_needs_an_image():
    m = SegmentationMeter()
    r = m.result()
    assert r["n_images"] == 0
    assert all(np.isnan(v) for part in ("pooled", "per_image") for v in r[part].values())  # pooled was Dice 1.0
    from egeunet.metrics import bootstrap_ci

    with pytest.raises(ValueError, match="at least one image"):
        bootstrap_ci([])


def test_all_lesion_truth_and_prediction_is_perfect():
    s = scores(confusion(np.ones((3, 3), bool), np.ones((3, 3), bool)))
    assert s == {"dice": 1.0, "iou": 1.0, "acc": 1.0, "sens": 1.0, "spec": 1.0}
