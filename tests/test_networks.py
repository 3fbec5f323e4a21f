import pytest
import torch
from torch import nn

from mrtrans.errors import MrtransError
from mrtrans.networks.discriminators import PatchGAN
from mrtrans.networks.generators import ResnetGenerator
from mrtrans.networks.vgg import VGG16Relu43, load_vgg16_relu43


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


def _torchvision_style_file(path, net):
    state = {k: v.clone() for k, v in net.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)  # torchvision's file has the classifier too
    torch.save(state, path)


def test_vgg_loads_torchvision_layout_from_path(tmp_path):
    torch.manual_seed(1)
    ref = VGG16Relu43()
    for p in ref.parameters():
        p.data.normal_(0, 0.05)
    assert {k.split(".")[1] for k in ref.state_dict()} == {"0", "2", "5", "7", "10", "12", "14", "17", "19", "21"}
    _torchvision_style_file(tmp_path / "vgg16-397923af.pth", ref)
    net = load_vgg16_relu43(tmp_path / "vgg16-397923af.pth")
    x = torch.rand(1, 1, 64, 64) * 2 - 1
    assert torch.equal(net(x), ref(x))
    assert net(x).shape == (1, 512, 8, 8)
    assert not any(p.requires_grad for p in net.parameters())


def test_vgg_found_in_the_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("MRTRANS_VGG16_WEIGHTS", raising=False)
    with pytest.raises(MrtransError, match=str(tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth")):
        load_vgg16_relu43()
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    _torchvision_style_file(tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth", VGG16Relu43())
    assert isinstance(load_vgg16_relu43(), VGG16Relu43)


def test_vgg_rejects_a_file_that_is_not_vgg(tmp_path):
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(MrtransError, match="not a VGG-16 weights file"):
        load_vgg16_relu43(tmp_path / "other.pth")
