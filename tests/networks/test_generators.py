import pytest
import torch
from torch import nn

from mrtrans.networks.generators import ResnetGenerator


@pytest.mark.parametrize("shape", [(2, 1, 32, 32), (1, 1, 48, 64)])
def test_generator_shape_and_range(shape):
    torch.manual_seed(0)
    gen = ResnetGenerator(base_channels=8, num_res_blocks=2)
    y = gen(torch.rand(shape) * 2 - 1)
    assert y.shape == shape
    assert y.min() >= -1 and y.max() <= 1


def test_gradients_reach_every_generator_parameter():
    torch.manual_seed(0)
    gen = ResnetGenerator(base_channels=8, num_res_blocks=2)
    gen(torch.randn(2, 1, 32, 32)).square().mean().backward()
    for name, p in gen.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_default_generator_is_the_paper_architecture():
    gen = ResnetGenerator()
    convs = [m for m in gen.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert len(convs) == 1 + 2 + 9 * 2 + 2 + 1  # c7s1-64, d128, d256, 9 residual blocks, u128, u64, c7s1-1
    assert convs[0].kernel_size == (7, 7) and convs[0].out_channels == 64
    assert any(isinstance(m, nn.ReflectionPad2d) for m in gen.modules())
    assert all(not m.affine for m in gen.modules() if isinstance(m, nn.InstanceNorm2d))
