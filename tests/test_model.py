import pytest
import torch

from egeunet.model import EGEUNet, EGEUNetConfig, InferenceModel, count_conv_macs, count_parameters, egeunet


def test_parameter_count_matches_paper():
    assert count_parameters(egeunet()) == 53_374


def test_conv_macs_match_paper():
    # counted with forward hooks on Conv1d/Conv2d, including the GHPA weight-map convs
    assert count_conv_macs(egeunet(), (1, 3, 256, 256)) == 72_096_256


def test_training_mode_returns_five_deep_maps_and_final():
    torch.manual_seed(0)
    m = egeunet().train()
    aux, final = m(torch.randn(2, 3, 256, 256))
    assert len(aux) == 5
    assert all(a.shape == (2, 1, 256, 256) for a in aux)
    assert final.shape == (2, 1, 256, 256)


def test_eval_mode_returns_only_final_logits_and_predict_gives_probabilities():
    torch.manual_seed(0)
    m = egeunet().eval()
    x = torch.randn(1, 3, 256, 256)
    logits = m(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (1, 1, 256, 256)
    prob = m.predict(x)
    torch.testing.assert_close(prob, torch.sigmoid(logits))
    assert not m.training


def test_inference_model_outputs_logits_or_probabilities():
    torch.manual_seed(0)
    m = egeunet()
    x = torch.randn(1, 3, 256, 256)
    logits = InferenceModel(m, "logits")(x)
    probs = InferenceModel(m, "probs")(x)
    torch.testing.assert_close(probs, torch.sigmoid(logits))
    with pytest.raises(ValueError, match="logits"):
        InferenceModel(m, "softmax")


@pytest.mark.parametrize("overrides", [{"deep_supervision": False}, {"bridge": False},
                                       {"bridge": False, "deep_supervision": False}])
def test_variants_without_deep_supervision_or_bridge_train_and_infer(overrides):
    torch.manual_seed(0)
    m = egeunet(**overrides).train()
    out = m(torch.randn(2, 3, 128, 128))
    final = out if isinstance(out, torch.Tensor) else out[1]
    assert final.shape == (2, 1, 128, 128)
    final.mean().backward()  # gradients flow
    assert m.eval()(torch.randn(1, 3, 128, 128)).shape == (1, 1, 128, 128)


def test_more_classes_change_only_the_final_head():
    """num_classes sizes the final head; the five deep-supervision maps stay one channel, as in
    the official code, because each is also the mask its bridge concatenates to every group."""
    torch.manual_seed(0)
    m = egeunet(num_classes=3).train()
    aux, final = m(torch.randn(2, 3, 64, 64))
    assert final.shape == (2, 3, 64, 64) and all(a.shape == (2, 1, 64, 64) for a in aux)
    assert m.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)
    assert count_parameters(m) == 53_374 + 2 * (8 + 1)  # two more output channels of the 8->1 head


def test_ghpa_maps_follow_official_axes():
    # x2 is weighted on the (C, H) plane (constant along W), x3 on the (C, W) plane.
    from egeunet.model.egeunet import GHPA

    torch.manual_seed(0)
    g = GHPA(16, 16)
    with torch.no_grad():
        g.params_zx.normal_()
        g.params_zy.normal_()
    xy, zx, zy = g.attention_maps(4, 12, 20)
    assert xy.shape == (1, 4, 12, 20)
    assert zx.shape == (1, 4, 12, 1)
    assert zy.shape == (1, 4, 1, 20)


def test_bad_widths_raise_clear_error():
    with pytest.raises(ValueError, match="divisible by 4"):
        EGEUNetConfig(widths=(8, 16, 24, 32, 48, 66))
    with pytest.raises(ValueError, match="6 stage widths"):
        EGEUNet(EGEUNetConfig(widths=(8, 16)))
    for dilations in ((0, 0, 0, 0), (1, 2, 5)):
        with pytest.raises(ValueError, match="gab_dilations needs 4 dilations >= 1"):
            EGEUNetConfig(gab_dilations=dilations)
