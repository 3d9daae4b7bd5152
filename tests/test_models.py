"""ResNet-32 shape and size, the last-ReLU switch, and the growing head."""
import torch

from gradlab.models.factory import IncrementalNet, build_backbone
from gradlab.models.heads import IncrementalLinear
from gradlab.models.resnet_cifar import resnet32


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
