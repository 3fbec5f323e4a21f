"""VGG-16 up to relu4_3 (Simonyan & Zisserman 2014): the semantic patch features of HarmonicGAN Sec. 3.3.2.

The layer indices match torchvision's ``vgg16().features`` so its ImageNet weights file
(``vgg16-397923af.pth``) loads as is. Nothing is downloaded: weights come from an explicit path,
``$MRTRANS_VGG16_WEIGHTS``, or the torch hub cache a user already has.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from mrtrans.errors import MrtransError

# conv channels, "M" for max-pool; stops after conv4_3 + ReLU (torchvision indices 0..22).
_LAYERS = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512]
TORCHVISION_FILE = "vgg16-397923af.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG16Relu43(nn.Module):
    """Frozen VGG-16 features up to relu4_3 (stride 8, 512 channels)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in _LAYERS:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU(inplace=False)]
                channels = int(item)
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG16Relu43:
        return super().train(False)  # always frozen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) in [-1, 1] -> (B, 512, H/8, W/8). Grey is repeated to RGB, then ImageNet-normalised."""
        rgb = ((x + 1) / 2).expand(-1, 3, -1, -1)
        return self.features((rgb - self.mean) / self.std)


def vgg16_weight_candidates(path: str | os.PathLike | None = None) -> list[Path]:
    """Where weights are looked for, in order."""
    out = []
    if path:
        out.append(Path(path))
    if os.environ.get("MRTRANS_VGG16_WEIGHTS"):
        out.append(Path(os.environ["MRTRANS_VGG16_WEIGHTS"]))
    out.append(Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILE)
    return out


def load_vgg16_relu43(path: str | os.PathLike | None = None) -> VGG16Relu43:
    """Build the network and load ImageNet weights (torchvision format, ``.pth`` or ``.safetensors``).

    Raises:
        MrtransError: no weights file found, or a file that does not hold VGG-16 features.
    """
    candidates = vgg16_weight_candidates(path)
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        if path:
            raise MrtransError(f"{path}: VGG-16 weights file not found")
        raise MrtransError(
            "VGG-16 weights not found (needed by smooth_features: vgg). Copy torchvision's "
            f"{TORCHVISION_FILE} to {candidates[-1]}, or set loss.vgg_weights / $MRTRANS_VGG16_WEIGHTS to its path"
        )
    try:
        if found.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(found))
        else:
            state = torch.load(found, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling/format errors come in many types
        raise MrtransError(f"{found}: cannot read VGG-16 weights ({type(exc).__name__}: {exc})") from exc
    net = VGG16Relu43()
    wanted = net.state_dict().keys()
    missing = [k for k in wanted if k not in state]
    if missing:
        raise MrtransError(f"{found}: not a VGG-16 weights file (missing {missing[0]})")
    net.load_state_dict({k: state[k] for k in wanted})
    return net
