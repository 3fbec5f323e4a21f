import pytest
import torch

from mrtrans.errors import MrtransError
from mrtrans.networks.vgg import VGG16Relu43, load_vgg16_relu43


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
