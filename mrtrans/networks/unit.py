"""UNIT's networks (Liu, Breuel, Kautz, NIPS 2017), for one-channel slices.

The paper (Sec. 4): encoders of 3 convolutional layers then 4 residual blocks, generators of 4 residual
blocks then 3 transposed convolutions, LeakyReLU; the last encoder layers and the first generator layers
are shared by the two domains (the shared-latent space). Here, per domain: front-end c7s1-64, d128, d256
(LeakyReLU 0.2, instance normalisation), ``num_res_blocks - 1`` private residual blocks; then one
residual block shared by both encoders (-> the latent mean, 256 x H/4 x W/4) and one shared by both
decoders; the private decoder ends with ``num_res_blocks - 1`` residual blocks, two stride-2 transposed
convolutions (128, 64) and a stride-1 transposed convolution to one channel with tanh.

The latent is Gaussian with unit variance around the encoder's output (Sec. 3: q(z|x) = N(E_mu(x), I));
translation uses the mean (no sampling), so a translation is deterministic.
"""

from __future__ import annotations

import torch
from torch import nn

from mrtrans.networks.generators import ResidualBlock, init_weights


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class UnitEncoder(nn.Module):
    """A domain's private encoder: 3 convolutions (down by 4) and the private residual blocks."""

    def __init__(self, in_channels: int = 1, base_channels: int = 64, num_res_blocks: int = 4) -> None:
        super().__init__()
        c = base_channels
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, c, 7),
            _norm(c),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1),
            _norm(2 * c),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * c, 4 * c, 4, stride=2, padding=1),
            _norm(4 * c),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        layers += [ResidualBlock(4 * c) for _ in range(num_res_blocks - 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class UnitDecoder(nn.Module):
    """A domain's private generator: residual blocks and 3 transposed convolutions back to the image."""

    def __init__(self, out_channels: int = 1, base_channels: int = 64, num_res_blocks: int = 4) -> None:
        super().__init__()
        c = base_channels
        layers: list[nn.Module] = [ResidualBlock(4 * c) for _ in range(num_res_blocks - 1)]
        layers += [
            nn.ConvTranspose2d(4 * c, 2 * c, 4, stride=2, padding=1),
            _norm(2 * c),
            nn.LeakyReLU(0.2, inplace=True),
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1),
            _norm(c),
            nn.LeakyReLU(0.2, inplace=True),
            nn.ConvTranspose2d(c, out_channels, 1),
            nn.Tanh(),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z)


class UnitTranslator(nn.Module):
    """One direction for inference: private encoder -> shared encoder block (latent mean) -> shared decoder
    block -> the other domain's private decoder. Built from the modules of :class:`UnitModel` (shared
    objects) or on its own (loading a checkpoint's ``gen_s2t``/``gen_t2s``)."""

    def __init__(
        self, encoder: nn.Module, shared_encoder: nn.Module, shared_decoder: nn.Module, decoder: nn.Module
    ) -> None:
        super().__init__()
        self.encoder, self.shared_encoder, self.shared_decoder, self.decoder = (
            encoder,
            shared_encoder,
            shared_decoder,
            decoder,
        )

    @classmethod
    def build(
        cls, in_channels: int = 1, out_channels: int = 1, base_channels: int = 64, num_res_blocks: int = 4
    ) -> UnitTranslator:
        translator = cls(
            UnitEncoder(in_channels, base_channels, num_res_blocks),
            ResidualBlock(4 * base_channels),
            ResidualBlock(4 * base_channels),
            UnitDecoder(out_channels, base_channels, num_res_blocks),
        )
        translator.apply(init_weights)
        return translator

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The latent mean E_mu(x), (B, 4 * base, H/4, W/4)."""
        return self.shared_encoder(self.encoder(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.shared_decoder(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


class UnitModel(nn.Module):
    """All of UNIT's encoders and generators, one forward computing the three streams of Eq. 2.

    Names: domain s = X1 (source), t = X2 (target); ``enc_s`` = the private part of E1, ``dec_t`` the private
    part of G2, ``shared_enc``/``shared_dec`` the tied layers. ``gen_s2t`` = G2(E1(.)), ``gen_t2s`` = G1(E2(.)).
    """

    def __init__(self, in_channels: int = 1, base_channels: int = 64, num_res_blocks: int = 4) -> None:
        super().__init__()
        if num_res_blocks < 2:
            raise ValueError("UNIT needs num_res_blocks >= 2 (one of them shared)")
        self.enc_s = UnitEncoder(in_channels, base_channels, num_res_blocks)
        self.enc_t = UnitEncoder(in_channels, base_channels, num_res_blocks)
        self.shared_enc = ResidualBlock(4 * base_channels)
        self.shared_dec = ResidualBlock(4 * base_channels)
        self.dec_s = UnitDecoder(in_channels, base_channels, num_res_blocks)
        self.dec_t = UnitDecoder(in_channels, base_channels, num_res_blocks)
        self.apply(init_weights)
        # Views for inference and checkpoints: they hold the very same modules (no copies).
        self.__dict__["gen_s2t"] = UnitTranslator(self.enc_s, self.shared_enc, self.shared_dec, self.dec_t)
        self.__dict__["gen_t2s"] = UnitTranslator(self.enc_t, self.shared_enc, self.shared_dec, self.dec_s)

    def forward(self, real_s: torch.Tensor, real_t: torch.Tensor) -> dict[str, torch.Tensor]:
        """Latent means and images of the reconstruction, translation and cycle-reconstruction streams."""
        s2t, t2s = self.gen_s2t, self.gen_t2s
        mu_s, mu_t = s2t.encode(real_s), t2s.encode(real_t)
        z_s, z_t = mu_s + torch.randn_like(mu_s), mu_t + torch.randn_like(mu_t)  # reparameterisation, unit variance
        fake_t, fake_s = s2t.decode(z_s), t2s.decode(z_t)  # translation streams: G2(z1), G1(z2)
        mu_fake_t, mu_fake_s = t2s.encode(fake_t), s2t.encode(fake_s)  # E2(x1->2), E1(x2->1)
        return {
            "mu_s": mu_s,
            "mu_t": mu_t,
            "rec_s": t2s.decode(z_s),
            "rec_t": s2t.decode(z_t),  # reconstruction streams: G1(z1), G2(z2)
            "fake_t": fake_t,
            "fake_s": fake_s,
            "mu_fake_t": mu_fake_t,
            "mu_fake_s": mu_fake_s,
            "cyc_s": t2s.decode(mu_fake_t + torch.randn_like(mu_fake_t)),  # G1(z2 ~ q2(z2 | x1->2))
            "cyc_t": s2t.decode(mu_fake_s + torch.randn_like(mu_fake_s)),
        }
