"""History of generated images for the discriminators (Shrivastava et al. 2017; CycleGAN, pool of 50)."""

from __future__ import annotations

import random
from typing import Any

import torch


class ImagePool:
    """Returns, per image, either the image itself or (with probability 1/2, once full) an older one
    that it replaces. The pool's randomness is its own, so its state can be saved and resumed.

    Args:
        size: capacity; 0 disables the pool.
        seed: seed of the pool's random generator.
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []
        self.rng = random.Random(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) fresh fakes -> (B, C, H, W) float32 fakes for the discriminator (detached).

        Stored and returned in float32 whatever the generator's autocast dtype (bf16 on CUDA), so a
        pool saved by a bf16 run feeds an fp32 discriminator after a resume on the CPU or without amp.
        """
        if self.size == 0:
            return images.detach().float()
        out = []
        for image in images.detach().float():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif self.rng.random() > 0.5:
                i = self.rng.randrange(self.size)
                out.append(self.images[i].clone())
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.cat(out)

    def state_dict(self) -> dict[str, Any]:
        version, internal, gauss = self.rng.getstate()
        images = torch.cat(self.images).cpu() if self.images else torch.empty(0)
        return {"size": self.size, "images": images, "rng": [version, list(internal), gauss]}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        self.size = int(state["size"])
        images = state["images"]
        # float32 also for pools of older checkpoints, which kept bf16 fakes
        self.images = (
            [img.unsqueeze(0).to(device=device, dtype=torch.float32) for img in images] if images.numel() else []
        )
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
