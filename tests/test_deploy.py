import torch

from egeunet.model.checkpoint import load_checkpoint
from egeunet.model.deploy import GroupNormNoReshape, deploy_model


def test_groupnorm_rewrite_is_equivalent():
    torch.manual_seed(0)
    gn = torch.nn.GroupNorm(4, 24)
    with torch.no_grad():
        gn.weight.normal_()
        gn.bias.normal_()
    x = torch.randn(2, 24, 17, 17) * 3 + 1
    torch.testing.assert_close(GroupNormNoReshape(gn)(x), gn(x), rtol=1e-5, atol=1e-5)


def test_deploy_model_matches_original_and_leaves_it_untouched():
    torch.manual_seed(0)
    m, _, _ = load_checkpoint()  # the shipped weights: trained norms, realistic activations
    d = deploy_model(m)
    assert not any(isinstance(mod, torch.nn.GroupNorm) for mod in d.modules())
    assert any(isinstance(mod, torch.nn.GroupNorm) for mod in m.modules())
    x = torch.randn(2, 3, 256, 256)
    with torch.no_grad():
        a, b = m(x), d(x)
    assert (torch.sigmoid(a) - torch.sigmoid(b)).abs().max() <= 1e-5
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
