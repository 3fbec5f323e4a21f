"""Typed configuration: frozen dataclasses, the only module that reads YAML.

The dataclass defaults are the reference configuration (the paper's HarmonicGAN-histogram);
a YAML file in ``configs/`` lists only what it changes. :func:`load_config` rejects unknown
keys, wrong types and out-of-range values with the key's dotted name.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import enum
import functools
import inspect
import math
import os
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from mrtrans.domain import Modality
from mrtrans.errors import MrtransError
from mrtrans.io import atomic_path
from mrtrans.resources import resource_dir


class GanMode(str, enum.Enum):
    """Adversarial objective; the paper uses least squares (Mao et al. 2017)."""

    lsgan = "lsgan"
    vanilla = "vanilla"


class Method(str, enum.Enum):
    """The training step (one module each in ``mrtrans/methods/``): ``cycle`` (two generators bound by cycle
    consistency; CycleGAN, HarmonicGAN, DiscoGAN and DistanceGAN are settings of it), ``unit`` (the
    shared-latent VAE-GAN of Liu et al. 2017), ``cut`` (PatchNCE + GAN, one direction per model), ``pix2pix``
    (paired slices, the upper bound)."""

    cycle = "cycle"
    unit = "unit"
    cut = "cut"  # contrastive unpaired translation (Park et al. 2020), one direction per model: CUT and FastCUT
    pix2pix = "pix2pix"  # paired: conditional GAN + L1 (Isola et al. 2017), the upper bound; one direction per model

    @classmethod
    def _missing_(cls, value: object) -> Method | None:
        return cls.cycle if value == "harmonicgan" else None  # the name of the cycle step in mrtrans < 0.4


class GeneratorArchitecture(str, enum.Enum):
    """ResNet (Johnson et al. 2016; CycleGAN, HarmonicGAN, DistanceGAN, CUT), DiscoGAN's encoder-decoder, UNIT's
    encoder+decoder, pix2pix's U-Net.
    """

    resnet = "resnet"
    discogan = "discogan"
    unit = "unit"
    unet = "unet"  # pix2pix's U-Net (num_downsampling = its depth: 8 for U-Net-256)


class DiscriminatorArchitecture(str, enum.Enum):
    """PatchGAN (Isola et al. 2017) or DiscoGAN's convolutional discriminator."""

    patchgan = "patchgan"
    discogan = "discogan"


class ReconstructionDistance(str, enum.Enum):
    """Distance of the cycle (reconstruction) loss: L1 (CycleGAN) or mean squared error (DiscoGAN)."""

    l1 = "l1"
    mse = "mse"


class DistanceMode(str, enum.Enum):
    """DistanceGAN's constraint: ``pairs`` of images of a batch, ``self`` (left/right halves of each image), or
    ``auto`` (pairs when a batch has several images, else self)."""

    auto = "auto"
    pairs = "pairs"
    self = "self"


class SmoothFeatures(str, enum.Enum):
    """Patch features of the smoothness term (paper Sec. 3.3)."""

    histogram = "histogram"
    vgg = "vgg"


class SmoothNormalization(str, enum.Enum):
    """How the sum of Eq. 6 is normalised (mrtrans.losses.smoothness, docs/training.md)."""

    all_pairs = "all_pairs"  # mean over all patch pairs (mrtrans < 0.2)
    brain_pairs = "brain_pairs"  # mean over pairs of brain patches
    brain_affinity = "brain_affinity"  # sum(w d) / sum(w) over pairs of brain patches


class TumorRegion(str, enum.Enum):
    """Tumor region the audit's detector learns (per target sequence for ``auto``)."""

    auto = "auto"
    whole = "whole"
    core = "core"


class Precision(str, enum.Enum):
    """Numeric precision of the generators at evaluation (bf16 autocast only on CUDA)."""

    fp32 = "fp32"
    bf16 = "bf16"


class ValidationMetric(str, enum.Enum):
    """What chooses best.pt: the brain protocol's MAE (lowest) or SSIM (highest), mean over the run's directions."""

    mae = "mae"
    ssim = "ssim"


class ExportFormat(str, enum.Enum):
    """``mrtrans export --format``: a network file with its preprocessing.json, or a MONAI bundle."""

    onnx = "onnx"
    torchscript = "torchscript"
    monai_bundle = "monai-bundle"


class IntensityRange(str, enum.Enum):
    """Range that prepare-brats scales brain intensities to; background is the low end."""

    minus_one_one = "-1,1"
    zero_one = "0,1"


def bounds(lo: float | None = None, hi: float | None = None) -> dict[str, Any]:
    return {"min": lo, "max": hi}


def described(text: str, *, flag: str | None = None) -> dict[str, Any]:
    """Field metadata of a key that is also a command-line flag and an API keyword argument: its help text, and its
    flag when that is not the key's name with dashes (``batch_size`` -> ``--batch-size``)."""
    return {"help": text} | ({"flag": flag} if flag else {})


def flag_name(f: dataclasses.Field[Any]) -> str:
    """The command-line flag of a schema field: ``--batch-size`` for ``batch_size`` unless its metadata names one."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


MAX_IMAGE_SIZE = 1024  # slices larger than this are refused by the config loader (prepare, train)

# Field metadata of a list that may be empty (other lists need at least one value: seeds, methods...).
MAY_BE_EMPTY = {"may_be_empty": True}
# Field metadata of a training key a resumed run may change: where and how fast it runs, how often it writes, how
# long it lasts (mrtrans.training.resume.RESUME_MAY_CHANGE is read from it; everything else must match the run).
RESUMABLE = {"resume_may_change": True}


def operational(lo: float | None = None, hi: float | None = None) -> dict[str, Any]:
    """The metadata of a bounded key a resume may change (:data:`RESUMABLE`)."""
    return bounds(lo, hi) | RESUMABLE


def flagged(schema: type, prefix: str = "") -> list[tuple[str, dataclasses.Field[Any], Any]]:
    """(dotted key, field, annotation) of every key of ``schema`` that is a command-line flag: the keys whose
    metadata has a help text (:func:`described`), nested sections included (``run.max_steps`` of TrainConfig)."""
    hints = typing.get_type_hints(schema)
    out: list[tuple[str, dataclasses.Field[Any], Any]] = []
    for f in dataclasses.fields(schema):
        if dataclasses.is_dataclass(hints[f.name]):
            out += flagged(hints[f.name], f"{prefix}{f.name}.")
        elif "help" in f.metadata:
            out.append((f"{prefix}{f.name}", f, hints[f.name]))
    return out


def argument_name(f: dataclasses.Field[Any]) -> str:
    """The keyword argument of a flagged key: its flag without dashes (``--max-steps`` -> ``max_steps``)."""
    return flag_name(f).removeprefix("--").replace("-", "_")


@dataclass(frozen=True)
class GeneratorConfig:
    """ResNet generator of Johnson et al. (2016) as used by CycleGAN."""

    in_channels: int = field(default=1, metadata=bounds(1))
    out_channels: int = field(default=1, metadata=bounds(1))
    base_channels: int = field(default=64, metadata=bounds(1))
    num_res_blocks: int = field(default=9, metadata=bounds(1))  # unit: per encoder/decoder, the last/first shared
    num_downsampling: int = field(default=2, metadata=bounds(1, 8))  # discogan: 4; unet: its depth, 5-8
    architecture: GeneratorArchitecture = GeneratorArchitecture.resnet

    def __post_init__(self) -> None:
        unet = self.architecture is GeneratorArchitecture.unet
        lo, hi = (5, 8) if unet else (1, 4)
        if not lo <= self.num_downsampling <= hi:
            raise MrtransError(
                f"config key 'generator.num_downsampling': {self.num_downsampling}; the {self.architecture.value} "
                f"generator takes {lo} to {hi}"
            )

    @property
    def size_factor(self) -> int:
        """Input sizes must be multiples of this (the generator's stride-2 stages)."""
        return 4 if self.architecture is GeneratorArchitecture.unit else 2**self.num_downsampling


@dataclass(frozen=True)
class DiscriminatorConfig:
    """70x70 PatchGAN (Isola et al. 2017) for num_layers = 3."""

    in_channels: int = field(default=1, metadata=bounds(1))
    base_channels: int = field(default=64, metadata=bounds(1))
    num_layers: int = field(default=3, metadata=bounds(1, 6))
    architecture: DiscriminatorArchitecture = DiscriminatorArchitecture.patchgan


@dataclass(frozen=True)
class LossConfig:
    """Loss weights; Eq. 9 of the paper. CycleGAN is lambda_smooth = 0."""

    gan_mode: GanMode = GanMode.lsgan
    lambda_gan: float = field(default=1.0, metadata=bounds(0.0))
    lambda_cycle: float = field(default=10.0, metadata=bounds(0.0))
    lambda_identity: float = field(default=0.0, metadata=bounds(0.0))
    # 5 with brain_pairs: from an earlier validation sweep whose rule is retired; not confirmed (docs/training.md).
    lambda_smooth: float = field(
        default=5.0, metadata=described("Weight of the smoothness term (0 = CycleGAN).") | bounds(0.0)
    )
    smooth_features: SmoothFeatures = SmoothFeatures.histogram
    smooth_normalization: SmoothNormalization = SmoothNormalization.brain_pairs
    # A patch is a node of the brain graph when more than this share of its source pixels is brain.
    brain_patch_fraction: float = field(default=0.5, metadata=bounds(0.0, 1.0))
    # Side of the graph's patches; None: image_size // 32, a graph of 32 x 32 nodes whatever the field - the
    # paper's 8 x 8 patches of 256 x 256 slices, so a lesion spans as many nodes at 64 px as at 256
    # (docs/training.md). A run's config.yaml and checkpoints record the value it used.
    patch_size: int | None = field(default=None, metadata=bounds(1))
    histogram_bins: int = field(default=16, metadata=bounds(2))
    # Affinity w_ij = exp(-L1(f_i, f_j) / sigma^2) on features that sum to 1 per patch, so the
    # L1 distance lies in [0, 2]. sigma = 0.5 gives w = 1 for equal patches, e^-4 ~ 0.02 for
    # patches that share half their histogram mass, e^-8 for disjoint ones (docs/training.md).
    sigma: float = field(default=0.5, metadata=bounds(1e-6))
    # Eq. 6's second half weighs F(G(x)) by the graph of G(x). True (every run so far): that graph is a constant,
    # the gradient reaches G only through the first half; False: the paper's Eq. 6 as written, w_ij(G(x)) too
    # gets a gradient (it can lower the term by pulling G(x)'s patches apart).
    detach_translated_graph: bool = True
    vgg_weights: str | None = None
    # DiscoGAN: reconstruction by mean squared error; CycleGAN: L1.
    cycle_distance: ReconstructionDistance = ReconstructionDistance.l1
    # DistanceGAN (Benaim & Wolf 2017): weight of the distance-preservation term (0: off) and its form.
    lambda_distance: float = field(default=0.0, metadata=bounds(0.0))
    distance_mode: DistanceMode = DistanceMode.auto


GRAPH_NODES_PER_SIDE = 32  # the paper's graph: 256 / 8


def graph_patch_size(image_size: int) -> int:
    """The default patch side for ``image_size``: a graph of 32 x 32 nodes (8 at 256, 2 at 64), at least 1."""
    return max(1, image_size // GRAPH_NODES_PER_SIDE)


def resolve_patch_size(cfg: TrainConfig, image_size: int) -> TrainConfig:
    """``cfg`` with ``loss.patch_size`` set (None -> :func:`graph_patch_size`).

    Raises:
        MrtransError: the patch size does not divide the image size.
    """
    patch = cfg.loss.patch_size or graph_patch_size(image_size)
    if image_size % patch:
        raise MrtransError(
            f"config key 'loss.patch_size': {patch} does not divide the image size {image_size}; "
            f"use a divisor (e.g. {graph_patch_size(image_size)}) or leave it unset"
        )
    return dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, patch_size=patch))


@dataclass(frozen=True)
class UnitLossConfig:
    """UNIT's weights (Liu et al. 2017, Sec. 4 defaults): lambda0 GAN, lambda1/lambda3 KL of the reconstruction
    and cycle streams, lambda2/lambda4 their image reconstruction (L1, the Laplacian likelihood)."""

    lambda_gan: float = field(default=10.0, metadata=bounds(0.0))
    lambda_kl: float = field(default=0.1, metadata=bounds(0.0))
    lambda_reconstruction: float = field(default=100.0, metadata=bounds(0.0))
    lambda_cycle_kl: float = field(default=0.1, metadata=bounds(0.0))
    lambda_cycle_reconstruction: float = field(default=100.0, metadata=bounds(0.0))


@dataclass(frozen=True)
class CutLossConfig:
    """CUT and FastCUT (Park et al. 2020; the authors' code, taesungp/contrastive-unpaired-translation): CUT's
    defaults. FastCUT (``configs/fastcut.yaml``): lambda_nce 10, no identity NCE term, flip equivariance."""

    lambda_gan: float = field(default=1.0, metadata=bounds(0.0))
    lambda_nce: float = field(default=1.0, metadata=bounds(0.0))
    # PatchNCE on G(y) against y too (CUT's identity term); the two NCE terms are averaged.
    nce_idt: bool = True
    num_patches: int = field(default=256, metadata=bounds(1))
    temperature: float = field(default=0.07, metadata=bounds(1e-6))
    # Translate a horizontally flipped batch half of the steps and flip the query features back (FastCUT).
    flip_equivariance: bool = False


@dataclass(frozen=True)
class Pix2PixLossConfig:
    """pix2pix (Isola et al. 2017): conditional GAN on (x, y) plus L1 to the paired target, weight 100."""

    lambda_gan: float = field(default=1.0, metadata=bounds(0.0))
    lambda_l1: float = field(default=100.0, metadata=bounds(0.0))


@dataclass(frozen=True)
class OptimConfig:
    """Adam and the CycleGAN schedule: constant, then linear decay to zero."""

    lr: float = field(default=2e-4, metadata=described("Adam learning rate (paper: 2e-4).") | bounds(0.0))
    beta1: float = field(default=0.5, metadata=bounds(0.0, 1.0))
    beta2: float = field(default=0.999, metadata=bounds(0.0, 1.0))
    epochs_constant: int = field(default=100, metadata=operational(0))
    epochs_decay: int = field(default=100, metadata=operational(0))

    def __post_init__(self) -> None:
        if self.epochs_constant + self.epochs_decay == 0:
            raise MrtransError(
                "config keys 'optim.epochs_constant' and 'optim.epochs_decay' are both 0, so the run "
                "would train no step; give at least one epoch (e.g. --epochs 1)"
            )


@dataclass(frozen=True)
class DataConfig:
    """How training reads a prepared dataset."""

    # None: train at the size the slices were prepared at (prepare-brats' default is the paper's 256).
    image_size: int | None = field(default=None, metadata=bounds(16, MAX_IMAGE_SIZE))
    batch_size: int = field(default=1, metadata=described("Slices per step and process.") | bounds(1))
    pool_size: int = field(default=50, metadata=bounds(0))
    max_train_slices: int | None = field(default=None, metadata=bounds(1))


@dataclass(frozen=True)
class RunConfig:
    """Everything about one run that is not the model."""

    seed: int = field(default=0, metadata=described("Seed of weights, data order and pools."))
    device: str = field(default="auto", metadata=described("auto (CUDA if present), cpu, cuda, cuda:N.") | RESUMABLE)
    amp: bool = field(default=True, metadata=RESUMABLE)
    # channels_last on CUDA: off by default, since InstanceNorm returns the standard layout and the conversions back
    # cost more copies than they save (a 2-block ResNet step: 37 copy ops instead of 28); bench_train times both.
    channels_last: bool = field(default=False, metadata=RESUMABLE)
    # torch.compile of the networks (CUDA; opt-in: the first steps compile, later ones may run faster).
    compile: bool = field(default=False, metadata=RESUMABLE)
    max_steps: int | None = field(default=None, metadata=described("Stop after this many steps.") | operational(1))
    log_every: int = field(default=50, metadata=operational(1))
    sample_every: int = field(default=500, metadata=operational(1))
    checkpoint_every: int = field(default=1000, metadata=operational(1))
    # Also write last.pt when this many seconds have passed since the last one (None: by steps only), so that an
    # interrupted run loses at most that much training on a slow machine (the demo: 60).
    checkpoint_seconds: float | None = field(default=None, metadata=operational(1.0))
    # Score the prepared set's validation slices (if any) every this many steps (None: at every checkpoint) and
    # keep checkpoints/best.pt, chosen by best_metric. The test slices are never read in training.
    validate_every: int | None = field(default=None, metadata=operational(1))
    best_metric: ValidationMetric = ValidationMetric.mae
    # Also keep a copy of the checkpoint at these steps (checkpoints/step_<N>.pt), for a trajectory: evaluate
    # --checkpoint step-N scores the run as it was then.
    keep_steps: tuple[int, ...] = field(default=(), metadata=MAY_BE_EMPTY | RESUMABLE)


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run: ``mrtrans train``."""

    method: Method = Method.cycle
    # One-direction methods (pix2pix, CUT): also train the reverse direction's own, independent model in the same
    # run, so a run translates both ways as the cycle methods' runs do; false: only the named direction.
    both_directions: bool = True
    generator: GeneratorConfig = GeneratorConfig()
    discriminator: DiscriminatorConfig = DiscriminatorConfig()
    loss: LossConfig = LossConfig()
    unit: UnitLossConfig = UnitLossConfig()
    cut: CutLossConfig = CutLossConfig()
    pix2pix: Pix2PixLossConfig = Pix2PixLossConfig()
    optim: OptimConfig = OptimConfig()
    data: DataConfig = DataConfig()
    run: RunConfig = RunConfig()

    def __post_init__(self) -> None:
        if (self.method is Method.unit) != (self.generator.architecture is GeneratorArchitecture.unit):
            raise MrtransError(
                f"config keys 'method' ({self.method.value}) and 'generator.architecture' "
                f"({self.generator.architecture.value}): UNIT's step needs UNIT's networks and only them; "
                "use --config unit"
            )
        if self.method is Method.unit and self.generator.num_res_blocks < 2:
            raise MrtransError("config key 'generator.num_res_blocks': UNIT needs at least 2 (one is shared)")


@dataclass(frozen=True)
class PrepareConfig:
    """``mrtrans prepare-brats``: the paper's protocol (Cohen et al. 2018) by default.

    ``train_slices`` is per domain (source and target each get that many; by default half tumor);
    ``test_slices`` are paired slices (both modalities and seg of the same slice), always half tumor; so are
    ``validation_slices`` (of the validation patients) and ``paired_train_slices`` (of the training patients).
    ``source_tumor_fraction``/``target_tumor_fraction`` skew a training domain's tumor prevalence
    (Cohen et al. 2018: a target domain without tumors teaches a translator to remove them).
    """

    modalities: tuple[Modality, Modality] = field(
        default=(Modality.flair, Modality.t1), metadata=described("Source,target modalities, e.g. flair,t1.")
    )
    train_slices: int = field(default=1400, metadata=described("Training slices per domain (half tumor).") | bounds(2))
    source_tumor_fraction: float = field(
        default=0.5, metadata=described("Share of tumor slices in the source training set.") | bounds(0.0, 1.0)
    )
    target_tumor_fraction: float = field(
        default=0.5,
        metadata=described(
            "Share of tumor slices in the target training set (0 or 1 make the hallucination setting of Cohen et al. "
            "2018). The test set stays 50/50."
        )
        | bounds(0.0, 1.0),
    )
    test_slices: int = field(default=300, metadata=described("Paired test slices (half tumor).") | bounds(2))
    test_fraction: float = field(
        default=0.2, metadata=described("Share of patients held out for test.") | bounds(0.0, 1.0)
    )
    validation_fraction: float = field(
        default=0.0,
        metadata=described(
            "Share of the training patients held out for validation (0: none): paired slices training scores every "
            "run.validate_every steps to keep best.pt."
        )
        | bounds(0.0, 0.9),
    )
    validation_slices: int = field(default=60, metadata=described("Paired validation slices (half tumor).") | bounds(2))
    paired_train_slices: int = field(
        default=0,
        metadata=described(
            "Paired training slices of the training patients, for paired methods (pix2pix, the upper bound); 0: none."
        )
        | bounds(0),
    )
    min_tumor_pixels: int = field(
        default=100, metadata=described("Tumor slice: at least this many seg>0 pixels.") | bounds(1)
    )
    min_brain_fraction: float = field(
        default=0.2,
        metadata=described("Healthy slice: no tumor and at least this share of brain.") | bounds(0.0, 1.0),
    )
    # At most 1024 (4x a BraTS slice; a slice set of 60000 px would not fit in memory).
    image_size: int = field(
        default=256, metadata=described("In-plane size after crop/pad.") | bounds(16, MAX_IMAGE_SIZE)
    )
    intensity_range: IntensityRange = field(
        default=IntensityRange.minus_one_one,
        metadata=described("Range of the brain's intensities (background at its low end)."),
    )
    lower_percentile: float = field(
        default=0.5, metadata=described("Brain percentile clipped to the range's low end.") | bounds(0.0, 100.0)
    )
    upper_percentile: float = field(
        default=99.5, metadata=described("Brain percentile clipped to the range's high end.") | bounds(0.0, 100.0)
    )
    spacing: tuple[float, ...] | None = field(
        default=None,
        metadata=described(
            "Resample to this voxel size in mm first: in-plane, or in-plane,through-plane (e.g. 2 or 2,3; default: "
            "the data's own when all subjects share it, else the most common one). 2 mm fits a brain in "
            "--image-size 128."
        ),
    )
    bias_field_correction: bool = field(
        default=False,
        metadata=described("N4 bias-field correction (SimpleITK) before normalisation; translate repeats it."),
    )
    max_extent_mismatch: float = field(
        default=0.1,
        metadata=described("Skip a subject when one sequence lacks more than this share of another's brain.")
        | bounds(0.0, 1.0),
    )
    allow_unstripped: bool = field(
        default=False,
        metadata=described("Use volumes that fail the checks of background 0 and skull-stripping."),
    )
    seed: int = field(default=0, metadata=described("Seed of the patient split and the slice draw."))

    def __post_init__(self) -> None:
        if self.spacing is not None and (len(self.spacing) not in (1, 2) or min(self.spacing) <= 0):
            raise MrtransError(
                f"config key 'spacing': {list(self.spacing)}: give the in-plane voxel size in mm, optionally "
                "followed by the through-plane one (e.g. 2 or 2,3), all > 0"
            )
        if self.image_size % 4:
            raise MrtransError(
                f"config key 'image_size': {self.image_size} is not a multiple of 4; the generators halve "
                f"the size twice and double it back, so use e.g. {self.image_size // 4 * 4 or 16} or "
                f"{self.image_size // 4 * 4 + 4}"
            )
        if not self.lower_percentile < self.upper_percentile:
            raise MrtransError(
                f"config keys 'lower_percentile' ({self.lower_percentile}) and 'upper_percentile' "
                f"({self.upper_percentile}): the lower must be below the upper"
            )


@dataclass(frozen=True)
class SynthConfig:
    """``mrtrans synth-brats``: synthetic BraTS-like subjects."""

    subjects: int = field(default=4, metadata=described("Number of subjects.") | bounds(1))
    # each size at least 16 (the bounds apply to every value of a list)
    shape: tuple[int, int, int] = field(
        default=(240, 240, 155), metadata=described("Volume shape X,Y,Z in 1 mm voxels.") | bounds(16)
    )
    tumor_fraction: float = field(
        default=0.75, metadata=described("Share of subjects with a tumor.") | bounds(0.0, 1.0)
    )
    seed: int = field(default=0, metadata=described("Random seed; same seed, same files."))
    tumor_scale: float = field(
        default=1.0,
        metadata=described(
            "Factor on the tumor radius (1: cores of 10-16 mm); larger tumors span more smoothness-graph nodes."
        )
        | bounds(0.1, 4.0),
    )


@dataclass(frozen=True)
class AuditConfig:
    """The hallucination audit's tumor detector (MONAI BasicUNet) and its decision rule."""

    enabled: bool = True
    steps: int = field(default=600, metadata=bounds(1))
    batch_size: int = field(default=8, metadata=bounds(1))
    lr: float = field(default=1e-3, metadata=bounds(0.0))
    features: tuple[int, int, int, int, int, int] = (8, 16, 32, 64, 128, 8)
    threshold: float = field(default=0.5, metadata=bounds(0.0, 1.0))
    # Smallest lesion (2D connected component) counted, of the detector's output and of the
    # reference; None: half the min_tumor_pixels that prepare-brats used for a tumor slice.
    min_lesion_pixels: int | None = field(default=None, metadata=bounds(1))
    # The tumor region the detector learns: auto (core without edema for T1/T1ce, whole tumor for
    # FLAIR/T2), whole or core (mrtrans.evaluation.audit.region_labels).
    region: TumorRegion = TumorRegion.auto
    # Train on copies whose tumors are inverted in their own context too (half the batches), so an added lesion is found
    # whatever
    # its polarity (a tumor with the source's contrast as well as with the target's).
    both_polarities: bool = True
    # The additions verdict is printed only when the detector can see additions: at most this share of
    # healthy real slices with a detection (the floor), at least min_sanity_rate of pasted tumors found.
    max_floor_rate: float = field(default=0.2, metadata=bounds(0.0, 1.0))
    min_sanity_rate: float = field(default=0.8, metadata=bounds(0.0, 1.0))
    seed: int = 0


@dataclass(frozen=True)
class SegmentationConfig:
    """The second tumor instrument (mrtrans.evaluation.segmentation): a MONAI BasicUNet segmenter of the target
    sequence's tumor region, trained seeded on the real target training slices as they are (one polarity, what a
    segmentation model of that sequence sees), applied to every translation (BraSyn, BraTS 2023)."""

    enabled: bool = True
    steps: int = field(default=600, metadata=bounds(1))
    batch_size: int = field(default=8, metadata=bounds(1))
    lr: float = field(default=1e-3, metadata=bounds(0.0))
    features: tuple[int, int, int, int, int, int] = (8, 16, 32, 64, 128, 8)
    threshold: float = field(default=0.5, metadata=bounds(0.0, 1.0))
    # A reference lesion is found when the segmentation covers at least this share of its pixels.
    min_overlap: float = field(default=0.1, metadata=bounds(0.0, 1.0))
    # Its verdicts are printed only when it can see lesions: at least min_ceiling_rate of the reference lesions
    # found on the real target, at most max_floor_rate on the target with its tumors inpainted.
    min_ceiling_rate: float = field(default=0.8, metadata=bounds(0.0, 1.0))
    max_floor_rate: float = field(default=0.2, metadata=bounds(0.0, 1.0))
    seed: int = 0


@dataclass(frozen=True)
class PresenceConfig:
    """Per-lesion presence by conspicuity (mrtrans.evaluation.presence): signed CNR against a healthy ring."""

    # Ring of healthy brain around each lesion, in pixels beyond its nearest healthy pixel.
    ring_width: int = field(default=4, metadata=bounds(1))
    # A lesion's CNR needs at least this many healthy ring pixels (else it is not judged): rings of 8-31 pixels
    # gave means and spreads so noisy that they made the heavy tail of the inpainted calibration lesions' |CNR| and
    # set the T1 threshold at 3.5 (1.45 with 32) on 838 validation-seed lesions (issue 33; chosen on synthetic
    # subjects of seed 4, never the benchmark's test subjects).
    min_ring_pixels: int = field(default=32, metadata=bounds(1))
    # Lower bound of the ring's standard deviation, in model-range units ([-1, 1]: 0.02 is 1 % of the range),
    # so a flat ring does not make every difference "conspicuous".
    noise_floor: float = field(default=0.02, metadata=bounds(0.0))
    # Share of inpainted (absent) lesions that the calibrated threshold calls present.
    false_present_rate: float = field(default=0.05, metadata=bounds(0.001, 0.5))
    # Removal is judged in a direction only when the real target shows at least this many reference lesions
    # and the inpainted target comes out erased for at least min_sanity_rate of them.
    min_judgeable_lesions: int = field(default=10, metadata=bounds(1))
    min_sanity_rate: float = field(default=0.8, metadata=bounds(0.0, 1.0))


class OutputNaming(str, enum.Enum):
    """``translate --naming``: the file names a segmenter expects for a synthesized sequence
    (mrtrans.inference.naming)."""

    brats = "brats"  # <ID>_t1.nii.gz beside the subject's real sequences
    nnunet = "nnunet"  # <case>_0001.nii.gz, the channel of the dataset.json


@dataclass(frozen=True)
class TranslatorConfig:
    """How a translation model is loaded and run: ``mrtrans translate``, :func:`mrtrans.translate`,
    :func:`mrtrans.load_translator` and the MONAI transforms take these keys, declared here once."""

    direction: str | None = field(
        default=None, metadata=described("flair2t1 or t12flair; default: the model's own direction.")
    )
    device: str = field(default="auto", metadata=described("auto (CUDA if present), cpu, cuda, cuda:N."))
    batch_size: int | None = field(
        default=None, metadata=described("Slices per forward pass (default: 1 on the CPU, 16 on CUDA).") | bounds(1)
    )
    precision: Precision = field(
        default=Precision.fp32,
        metadata=described("fp32 (default) or bf16 (bf16 autocast on CUDA; no effect on the CPU)."),
    )
    allow_unstripped: bool = field(
        default=False,
        metadata=described("Translate volumes that fail the checks of background 0 and skull-stripping."),
    )
    checkpoint: str = field(
        default="last",
        metadata=described(
            "A run folder's last (default) or best checkpoint (best.pt: chosen on the validation slices; prepare "
            "with --set validation_fraction=0.1), or step-N, a step the run kept (run.keep_steps)."
        ),
    )


@dataclass(frozen=True)
class TranslateConfig(TranslatorConfig):
    """``mrtrans translate`` (and :func:`mrtrans.translate_files`): the model's keys and where the outputs go."""

    mask: Path | None = field(
        default=None, metadata=described("Brain mask on the input's grid (default: non-zero voxels).")
    )
    num_parts: int = field(
        default=1, metadata=described("Split the sorted inputs into N disjoint parts...") | bounds(1)
    )
    part_id: int = field(
        default=0,
        metadata=described("...and translate part K (0-based), e.g. $SLURM_ARRAY_TASK_ID.") | bounds(0),
    )
    overwrite: bool = field(
        default=False,
        metadata=described("Redo outputs an earlier translate wrote (kept otherwise); other files are never replaced."),
    )
    bids_out: Path | None = field(
        default=None,
        metadata=described(
            "INPUTS is a BIDS dataset: write a BIDS derivative dataset here (sub-*/[ses-*/]anat/"
            "*_desc-mrtrans<Direction>_<suffix>.nii.gz, JSON sidecars, dataset_description.json); outside INPUTS."
        ),
    )
    naming: OutputNaming | None = field(
        default=None,
        metadata=described(
            "brats or nnunet: name each synthesized sequence as that segmenter expects (<ID>_t1.nii.gz, "
            "<case>_0001.nii.gz) in the tree --out, mirroring INPUTS; refuses a name a real sequence has."
        ),
    )


PROTOCOLS = ("brain_shared", "brain", "paper")  # the image-metric protocols of mrtrans evaluate (docs/evaluation.md)


@dataclass(frozen=True)
class EvalConfig:
    """``mrtrans evaluate``: what to score and how."""

    batch_size: int = field(default=16, metadata=bounds(1))
    figure_slices: int = field(default=3, metadata=bounds(0))
    audit: AuditConfig = AuditConfig()
    presence: PresenceConfig = PresenceConfig()
    segmentation: SegmentationConfig = SegmentationConfig()
    # Image-metric protocols (brain_shared, brain, paper); brain_shared is always computed. An experiment that only
    # reads brain_shared (the hallucination benchmark's trajectory) skips the others: they are most of the time.
    protocols: tuple[str, ...] = PROTOCOLS
    device: str = field(default="auto", metadata=described("auto (CUDA if present), cpu, cuda, cuda:N."))
    precision: Precision = field(
        default=Precision.fp32,
        metadata=described("fp32 (default) or bf16 (autocast, CUDA only) for the generators."),
    )
    # Confidence intervals: percentile bootstrap over patients (mrtrans.evaluation.statistics).
    bootstrap_resamples: int = field(default=2000, metadata=bounds(100))
    bootstrap_seed: int = 0
    confidence: float = field(default=0.95, metadata=bounds(0.5, 0.999))

    def __post_init__(self) -> None:
        unknown = set(self.protocols) - set(PROTOCOLS)
        if unknown:
            raise MrtransError(f"config key 'protocols': {sorted(unknown)} unknown; use some of {', '.join(PROTOCOLS)}")


C = TypeVar("C")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert YAML scalars/lists to it."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], key)
    if origin is tuple:
        args = typing.get_args(tp)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",")]
        if len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]: any length, at least one
            if not isinstance(value, (list, tuple)) or not value:
                raise MrtransError(f"config key '{key}': expected a non-empty list, got {value!r}")
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise MrtransError(f"config key '{key}': expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value.value if isinstance(value, enum.Enum) else str(value))
        except ValueError:
            choices = ", ".join(m.value for m in tp)
            raise MrtransError(f"config key '{key}': {value!r} is not one of: {choices}") from None
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
    elif tp in (int, float) and not isinstance(value, bool):
        # An int is accepted where a float is expected, never a float where an int is.
        number = None
        if isinstance(value, int) or (tp is float and isinstance(value, float)):
            number = tp(value)
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):
                number = tp(value)
        if number is not None:
            if not math.isfinite(number):
                raise MrtransError(f"config key '{key}': {value!r} is not a finite number")
            return number
    elif tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    elif tp is Path:
        if isinstance(value, (str, os.PathLike)):
            return Path(value)
    raise MrtransError(f"config key '{key}': expected {_type_name(tp)}, got {value!r}")


def from_dict(cls: type[C], data: dict[str, Any] | None, prefix: str = "") -> C:
    """Build dataclass ``cls`` from a nested dict, validating every key and value."""
    data = data or {}
    if not isinstance(data, dict):
        raise MrtransError(f"config key '{prefix.rstrip('.') or '<root>'}': expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        known = ", ".join(fields)
        raise MrtransError(f"config key '{prefix}{unknown[0]}': unknown key (known here: {known})")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        key, tp = f"{prefix}{name}", hints[name]
        if dataclasses.is_dataclass(tp):
            # A nested section starts from its parent's default (which may differ from the section class's).
            default = fields[name].default
            base = to_dict(default) if dataclasses.is_dataclass(default) else {}
            kwargs[name] = from_dict(tp, _merge(base, value) if isinstance(value, dict) else value, prefix=f"{key}.")
            continue
        if fields[name].metadata.get("may_be_empty") and isinstance(value, (list, tuple)) and not value:
            kwargs[name] = ()
            continue
        value = _coerce(value, tp, key)
        lo, hi = fields[name].metadata.get("min"), fields[name].metadata.get("max")
        for one in value if isinstance(value, tuple) else () if value is None else (value,):  # a list: each value
            if lo is not None and one < lo:
                raise MrtransError(f"config key '{key}': {one!r} is below the minimum {lo}")
            if hi is not None and one > hi:
                raise MrtransError(f"config key '{key}': {one!r} is above the maximum {hi}")
        kwargs[name] = value
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain dict of a config (enums as their values, tuples as lists), for YAML and checkpoints."""

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return to_dict_value(v)

    return plain(dataclasses.asdict(cfg))


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise MrtransError(f"config key '{dotted}': '{part}' is not a section")
    node[leaf] = value


def resolve_config_path(path_or_preset: str | Path, folder: str = "configs") -> Path:
    """A YAML path, or the name of a file in ``folder`` (``configs``: ``cyclegan``...; ``data_prep``)."""
    path = Path(path_or_preset)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    preset = resource_dir(folder) / f"{path_or_preset}.yaml"
    if preset.exists():
        return preset
    names = ", ".join(preset_names(folder))
    raise MrtransError(f"{path_or_preset}: no such config file or preset in {folder}/ (presets: {names})")


def preset_names(folder: str = "configs") -> list[str]:
    """The names of the YAML files in ``folder`` (``configs``: every method and layer preset)."""
    return sorted(p.stem for p in resource_dir(folder).glob("*.yaml"))


# What a size/schedule preset (``--preset``: cpu_small, paper_networks) may set; a file of configs/ that sets
# anything else (the method, its losses) is a method config (``--config``, ``--method``).
PRESET_SECTIONS = {"generator", "discriminator", "optim", "run", "data"}


def method_names() -> list[str]:
    """The method configs of configs/ (``cyclegan``, ``harmonicgan_hist``...): files that set more than sizes."""
    return [n for n in preset_names() if set(read_yaml(resource_dir("configs") / f"{n}.yaml") or {}) - PRESET_SECTIONS]


def layer_preset_names() -> list[str]:
    """The size/schedule presets of configs/ (``cpu_small``, ``paper_networks``)."""
    methods = set(method_names())
    return [n for n in preset_names() if n not in methods]


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(path: Path) -> dict[str, Any]:
    """Read one config file as a mapping."""
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise MrtransError(f"{path}: invalid YAML ({exc})") from exc
    if not isinstance(tree, dict):
        raise MrtransError(f"{path}: a config file must be a mapping of keys to values")
    return tree


def load_config(
    cls: type[C],
    files: str | Path | dict[str, Any] | Sequence[str | Path | dict[str, Any]] | None = None,
    overrides: dict[str, Any] | None = None,
    folder: str = "configs",
) -> C:
    """Load ``cls`` from defaults, then YAML files or presets in order, then dotted overrides.

    Args:
        cls: the config dataclass (``TrainConfig``, ``PrepareConfig``...).
        files: YAML paths, preset names from ``folder`` or nested dicts in YAML's shape, later ones
            win; None for defaults.
        overrides: ``{"optim.lr": 1e-4, "run.max_steps": 10}``; None values are ignored, so CLI
            options that were not given leave the files' values alone.
        folder: where preset names are looked up (``configs``, ``data_prep``, ``evaluation``).

    Raises:
        MrtransError: unreadable YAML, unknown key, wrong type or out-of-range value.
    """
    if files is None:
        files = []
    elif isinstance(files, (str, Path, dict)):
        files = [files]
    tree: dict[str, Any] = {}
    for item in files:
        tree = _merge(
            tree, copy.deepcopy(item) if isinstance(item, dict) else read_yaml(resolve_config_path(item, folder))
        )
    for dotted, value in (overrides or {}).items():
        if value is not None:
            set_dotted(tree, dotted, value)
    return from_dict(cls, tree)


def parse_assignments(items: Sequence[str] | None, option: str = "--set") -> dict[str, Any]:
    """``["loss.sigma=1", "run.amp=true"]`` -> ``{"loss.sigma": 1, "run.amp": True}`` (values read as YAML).

    Any key of a command's config schema can be set this way; load_config then checks the key, type and range.

    Raises:
        MrtransError: an item without ``=``, with an empty key, or a key given twice.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise MrtransError(f"{option} {item!r}: expected section.key=value, e.g. {option} loss.sigma=1")
        if key.strip() in out:
            raise MrtransError(f"{option} {key.strip()}: given twice; give each key once")
        try:
            out[key.strip()] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = text
    return out


def schema_keys(cls: type) -> list[str]:
    """The top-level keys of a config schema (its dataclass fields)."""
    return [f.name for f in dataclasses.fields(cls)]


def keys_marked(cls: type, flag: str, prefix: str = "") -> tuple[str, ...]:
    """The dotted keys of a config schema whose field metadata sets ``flag`` (e.g. ``resume_may_change``)."""
    keys: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            keys += keys_marked(hints[f.name], flag, f"{prefix}{f.name}.")
        elif f.metadata.get(flag):
            keys.append(f"{prefix}{f.name}")
    return tuple(keys)


F = TypeVar("F", bound=Callable[..., Any])


def takes(schema: type) -> Callable[[F], F]:
    """Give a function the keys of ``schema`` as its keyword arguments: declared once, in the schema.

    The function is written with one parameter ``config`` (of type ``schema``, with a default) where the keys go;
    its published signature lists instead each key of ``schema`` with the schema's default (positional or
    keyword-only, as ``config`` is), and ``config=`` last for a whole schema object. A call's keys are checked as a
    config file's are (:func:`from_dict`: type, range, choices) and the function receives the schema object. Its
    docstring gains the keys' help texts.

    Raises (at call time):
        MrtransError: a key's value is invalid, or both ``config=`` and keys are given.
    """
    hints = typing.get_type_hints(schema)
    fields = dataclasses.fields(schema)

    def decorate(fn: F) -> F:
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())
        names = [p.name for p in params]
        at = names.index("config")
        kind = params[at].kind
        keys = [inspect.Parameter(f.name, kind, default=f.default, annotation=hints[f.name]) for f in fields]
        whole = inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=schema | None)
        rest = params[at + 1 :]
        published = sig.replace(parameters=[*params[:at], *keys, *rest, whole])

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            given = dict(published.bind(*args, **kwargs).arguments)
            options = {f.name: given.pop(f.name) for f in fields if f.name in given}
            config = given.pop("config", None)
            if config is not None and options:
                raise MrtransError(f"{fn.__name__}: give config= or the keys {', '.join(options)}, not both")
            if config is None:
                config = from_dict(schema, options)
            elif not isinstance(config, schema):
                raise MrtransError(f"{fn.__name__}: config= must be a {schema.__name__}, got {type(config).__name__}")
            return fn(**given, config=config)

        return publish(wrapper, published, (fn.__doc__ or "").rstrip() + "\n\n" + keys_doc(schema))

    return decorate


def keys_doc(schema: type) -> str:
    """The docstring section listing a schema's keys and their help texts (:func:`takes`)."""
    lines = [f"    Keys of :class:`mrtrans.config.{schema.__name__}` (keyword arguments, or ``config=``):"]
    for f in dataclasses.fields(schema):
        default = to_dict_value(f.default)
        lines.append(f"        {f.name} (default {default!r}): {f.metadata.get('help', '')}")
    return "\n".join(lines) + "\n"


def to_dict_value(value: Any) -> Any:
    """One value as a config file writes it (enums as their values, paths and tuples plainly)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [to_dict_value(v) for v in value]
    return value


def command_line_text(value: Any) -> str | None:
    """A value as the command line writes it: enums by their value, lists comma-separated, booleans lower-case
    (None stays None)."""
    value = to_dict_value(value)
    if value is None:
        return None
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def publish(wrapper: Any, signature: inspect.Signature, doc: str | None = None) -> Any:
    """Give a generated wrapper the signature its callers (and typer, through the annotations) see, and its
    docstring."""
    wrapper.__signature__ = signature
    wrapper.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
    if doc is not None:
        wrapper.__doc__ = doc
    return wrapper


def options_table(schema: type) -> str:
    """The Markdown table of a schema's flags (docs/translate.md, data.md and training.md hold theirs;
    tests/test_docs.py keeps them equal)."""
    rows = ["| option | key | default | meaning |", "|---|---|---|---|"]
    for key, f, _ in flagged(schema):
        text = command_line_text(f.default)
        shown = "none" if text is None else f"`{text}`"
        rows.append(f"| `{flag_name(f)}` | `{key}` | {shown} | {f.metadata.get('help', '')} |")
    return "\n".join(rows) + "\n"


def takes_flagged(schema: type) -> Callable[[F], F]:
    """Give a function the flagged keys of ``schema`` (:func:`flagged`) as keyword-only arguments defaulting to None
    (None: leave the config files' value); it is written with a parameter ``named`` and receives the ones given as
    ``{dotted key: value}``, for :func:`load_config`'s overrides, which checks them."""
    keys = flagged(schema)

    def decorate(fn: F) -> F:
        sig = inspect.signature(fn)
        own = [p for p in sig.parameters.values() if p.name != "named"]
        extra = [
            inspect.Parameter(argument_name(f), inspect.Parameter.KEYWORD_ONLY, default=None, annotation=tp | None)
            for _, f, tp in keys
        ]
        published = sig.replace(parameters=[*own, *extra])

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            given = dict(published.bind(*args, **kwargs).arguments)
            named = {key: given.pop(argument_name(f)) for key, f, _ in keys if argument_name(f) in given}
            return fn(**given, named={k: v for k, v in named.items() if v is not None})

        head = f"Keys of :class:`mrtrans.config.{schema.__name__}` as keyword arguments (None: the files' value):"
        lines = [f"    {head}"]
        lines += [f"        {argument_name(f)} ({key}): {f.metadata['help']}" for key, f, _ in keys]
        return publish(wrapper, published, (fn.__doc__ or "").rstrip() + "\n\n" + "\n".join(lines) + "\n")

    return decorate


def epoch_schedule(epochs: int | None) -> dict[str, int | None]:
    """Overrides for ``epochs`` in all: half at constant lr, half in linear decay (the paper: 100 + 100)."""
    if epochs is None:
        return {"optim.epochs_constant": None, "optim.epochs_decay": None}
    return {"optim.epochs_constant": epochs - epochs // 2, "optim.epochs_decay": epochs // 2}


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config as YAML (atomically)."""

    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return Path(path)


# Keys added after a run was made, with the value such a run used. A resolved config.yaml lists every key of its
# version, so a missing key means the run predates it (mrtrans < 0.2).
LEGACY_TRAIN_VALUES = {"loss.smooth_normalization": SmoothNormalization.all_pairs.value}
# Keys older runs recorded that no version reads: mrtrans <= 0.4 wrote run.epochs, which nothing ever used (the
# schedule is optim.epochs_constant + optim.epochs_decay).
RETIRED_TRAIN_KEYS = ("run.epochs",)


def train_config_from_record(tree: dict[str, Any], overrides: dict[str, Any] | None = None) -> TrainConfig:
    """A run's recorded config (its config.yaml, or the one a checkpoint carries) in today's schema: the one place
    old run configs are migrated. Keys older versions wrote that no longer exist are dropped
    (``RETIRED_TRAIN_KEYS``), keys added since take the value the run used (``LEGACY_TRAIN_VALUES``); then
    dotted ``overrides``."""
    tree = copy.deepcopy(tree)
    for dotted in RETIRED_TRAIN_KEYS:
        section, leaf = dotted.split(".")
        if isinstance(tree.get(section), dict):
            tree[section].pop(leaf, None)
    for dotted, value in LEGACY_TRAIN_VALUES.items():
        section, leaf = dotted.split(".")
        if isinstance(tree.get(section), dict) and leaf not in tree[section]:
            tree[section][leaf] = value
    for dotted, value in (overrides or {}).items():
        if value is not None:
            set_dotted(tree, dotted, value)
    return from_dict(TrainConfig, tree)
