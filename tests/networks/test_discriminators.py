import torch
from torch import nn

from mrtrans.networks.discriminators import PatchGAN


def test_patchgan_output_and_70x70_receptive_field():
    torch.manual_seed(0)
    disc = PatchGAN()
    assert disc(torch.randn(1, 1, 256, 256)).shape == (1, 1, 30, 30)  # as in CycleGAN at 256
    # Without normalisation (which couples all pixels) one output pixel sees exactly 70x70 inputs.
    for _name, module in list(disc.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.InstanceNorm2d):
                setattr(module, child_name, nn.Identity())
    x = torch.randn(1, 1, 128, 128, requires_grad=True)
    out = disc(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = (x.grad[0, 0].abs().sum(1) > 0).nonzero()
    cols = (x.grad[0, 0].abs().sum(0) > 0).nonzero()
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70
