"""ResNet-32 and LT-CIL's PODNet ResNet-32: shape and size, the ReLU switches, the zero-padding shortcut;
and the growing head."""
import pytest
import torch
from torch import nn

from gradlab.config import RunConfig
from gradlab.errors import ConfigError
from gradlab.models.factory import BACKBONES, IncrementalNet, build_backbone
from gradlab.models.heads import IncrementalLinear
from gradlab.models.resnet_cifar import ResNetCifar, ZeroPadShortcut, resnet32, resnet32_podnet


def test_resnet32_feature_and_size():
    net = resnet32()
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 64)
    conv_params = sum(p.numel() for n, p in net.named_parameters() if p.dim() == 4)
    # stem + 3 stages of 5 blocks x two 3x3 convs, + the two option-B 1x1 shortcut convs
    stem = 3 * 16 * 9
    stage1 = 10 * 16 * 16 * 9
    stage2 = 16 * 32 * 9 + 9 * 32 * 32 * 9 + 16 * 32
    stage3 = 32 * 64 * 9 + 9 * 64 * 64 * 9 + 32 * 64
    assert conv_params == stem + stage1 + stage2 + stage3 == 463792


def test_last_relu_switch_allows_negative_features():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 32, 32)
    assert (resnet32()(x) >= 0).all()
    net = resnet32(last_relu=False)
    assert (net.layers(net.stem(x)) < 0).any()
    assert not (resnet32().layers(net.stem(x)) < 0).any()


def test_podnet_resnet32_shape_size_and_shortcuts():
    net = resnet32_podnet()
    assert isinstance(net, ResNetCifar) and net.out_dim == 64
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 64)
    stages, feature = net.forward_stages(torch.randn(2, 3, 32, 32))
    assert [tuple(s.shape[1:]) for s in stages] == [(16, 32, 32), (32, 16, 16), (64, 8, 8)] and feature.shape == (2, 64)
    assert isinstance(net.stem[2], nn.ReLU)                                 # the stem keeps its ReLU
    shortcuts = [b.shortcut for b in net.layers]
    assert [type(s).__name__ for s in shortcuts].count("ZeroPadShortcut") == 2
    assert all(isinstance(s, (nn.Identity, ZeroPadShortcut)) for s in shortcuts)
    assert sum(p.numel() for s in shortcuts for p in s.parameters()) == 0   # zero padding: no parameters
    # the same convs and BNs as resnet32 minus its two 1x1 conv + BN shortcuts (16->32, 32->64)
    option_b = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    count = lambda m: sum(p.numel() for p in m.parameters())                # noqa: E731
    assert count(resnet32()) - count(net) == option_b == 2752 and count(net) == 463504


def test_zero_pad_shortcut_subsamples_and_appends_zero_channels():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    out = ZeroPadShortcut(3, 7, 2)(x)
    assert out.shape == (2, 7, 3, 3)
    assert torch.equal(out[:, :3], x[:, :, ::2, ::2]) and not out[:, 3:].any()
    assert torch.equal(ZeroPadShortcut(3, 3, 1)(x), x)
    with pytest.raises(ValueError, match="reduce"):
        ZeroPadShortcut(4, 2, 2)


def test_podnet_resnet32_has_no_relu_after_the_residual_additions():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 32, 32)
    standard, podnet = resnet32().eval(), resnet32_podnet().eval()
    assert [b.relu_out for b in podnet.layers] == [False] * 14 + [True]     # only last_relu's final ReLU
    assert not any(b.relu_out for b in resnet32_podnet(last_relu=False).layers)
    for net in (standard, podnet):
        stages, _ = net.forward_stages(x)
        negative = [bool((s < 0).any()) for s in stages]
        assert negative == ([False] * 3 if net is standard else [True, True, False])
    block = podnet.layers[3]                                                # an identity-shortcut block
    h = torch.randn(4, 16, 8, 8)
    inner = block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(h)))))
    assert torch.allclose(block(h), inner + h, atol=1e-6)                   # the sum, with no ReLU after it
    # with the last ReLU dropped (as PODNet does), the feature itself goes negative
    bare = resnet32_podnet(last_relu=False).eval()
    bare.load_state_dict(podnet.state_dict())
    assert (bare(x) < 0).any() and (podnet(x) >= 0).all()


def test_podnet_resnet32_is_a_model_choice():
    assert BACKBONES["resnet32_podnet"] is resnet32_podnet
    net = build_backbone("resnet32_podnet", in_channels=1, last_relu=False)
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 64) and not net.layers[-1].relu_out
    assert RunConfig(scenario="synthetic", model="resnet32_podnet").validate().model == "resnet32_podnet"
    with pytest.raises(ConfigError, match="model"):
        RunConfig(scenario="synthetic", model="resnet32_pod").validate()


def test_head_grows_and_keeps_old_rows():
    torch.manual_seed(0)
    head = IncrementalLinear(4)
    head.grow(3)
    old_w, old_b = head.weight.detach().clone(), head.bias.detach().clone()
    head.grow(2)
    assert head.weight.shape == (5, 4) and head.bias.shape == (5,) and head.task_sizes == [3, 2]
    assert torch.equal(head.weight[:3], old_w) and torch.equal(head.bias[:3], old_b)
    assert head.weight.abs().max() <= 0.5 and head.bias.abs().max() <= 0.5   # U(-1/sqrt(4), 1/sqrt(4))
    feats = torch.randn(2, 4)
    assert torch.allclose(head(feats), feats @ head.weight.T + head.bias)


def test_incremental_net_on_digit_sized_input():
    net = IncrementalNet(build_backbone("small", in_channels=1))
    net.head.grow(4)
    out = net(torch.randn(5, 1, 8, 8))
    assert out.logits.shape == (5, 4) and out.features.shape == (5, 64)
