"""Which device a process computes on: one rule for train, translate, evaluate and the Python API."""

from __future__ import annotations

import torch

from mrtrans.errors import MrtransError


def plan_device(name: str, local_rank: int = 0, world: int = 1, cuda_available: bool | None = None) -> torch.device:
    """The device of this process, always with an index on CUDA.

    ``auto`` and ``cuda`` take this process's GPU (``cuda:LOCAL_RANK``; 0 outside torchrun) when CUDA is
    present; ``cpu`` is the CPU even on a GPU machine; ``cuda:N`` is GPU N for a single process.

    Raises:
        MrtransError: not a device, CUDA asked for but absent, or ``cuda:N`` under torchrun (every
            process would share one GPU).
    """
    cuda_available = torch.cuda.is_available() if cuda_available is None else cuda_available
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if cuda_available else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise MrtransError(f"--device {name!r}: not a device (use auto, cpu, cuda or cuda:N)") from exc
    if device.type == "cuda":
        if not cuda_available:
            raise MrtransError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
        if device.index is None:
            return torch.device(f"cuda:{local_rank}")
        if world > 1:
            raise MrtransError(
                f"--device {name} under torchrun would put all {world} processes on one GPU; use --device cuda "
                f"(each process takes the GPU of its LOCAL_RANK)"
            )
    return device


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """:func:`plan_device` for one process (translate, evaluate)."""
    return plan_device(name, local_rank)


def precision_plan(device: torch.device, amp: bool, capability: tuple[int, int] | None = None) -> tuple[bool, str]:
    """Whether a run computes in bf16 autocast, and the line that says what it computes in.

    bf16 autocast runs only where the device computes in bf16 natively: CUDA GPUs of compute capability 8.0 or
    more (Ampere, Hopper: A100, H100, H200, RTX 30xx and later). On older GPUs (V100: 7.0, T4: 7.5) torch emulates
    bf16, slower than fp32, so such a device trains in fp32 and says so. "fp32" is true float32: the caller turns
    TF32 off (:func:`set_fp32_matmul`), which PyTorch otherwise uses for convolutions on Ampere and later.

    Args:
        capability: the device's (major, minor); default read from CUDA.
    """
    if device.type != "cuda":
        return False, "float32 on the CPU"
    if capability is None:
        capability = torch.cuda.get_device_capability(device)
    if not amp:
        return False, "float32 (TF32 off) on CUDA: run.amp is false"
    if capability < (8, 0):
        return False, (
            f"float32 (TF32 off): this GPU (compute capability {capability[0]}.{capability[1]}) has no native "
            "bfloat16, so run.amp's bf16 autocast would be emulated and slower"
        )
    return True, f"bfloat16 autocast on CUDA (compute capability {capability[0]}.{capability[1]})"


def set_fp32_matmul(strict: bool) -> None:
    """Strict float32 (no TF32) for convolutions and matrix products, or PyTorch's defaults back."""
    torch.backends.cudnn.allow_tf32 = not strict
    torch.backends.cuda.matmul.allow_tf32 = False  # PyTorch's default for matmuls; convolutions differ


def grid_devices(jobs: int, requested: str, gpus: int) -> list[str]:
    """The device of each of ``jobs`` grid runs: round-robin over the visible GPUs (``CUDA_VISIBLE_DEVICES``
    selects them) when the runs ask for ``auto`` or ``cuda`` and there are GPUs; otherwise what they asked for."""
    if gpus > 0 and requested in ("auto", "cuda"):
        return [f"cuda:{i % gpus}" for i in range(jobs)]
    return [requested] * jobs


def rng_states(device: torch.device) -> dict[str, torch.Tensor]:
    """The random states a checkpoint saves: the CPU generator's and, on CUDA, the device's (UNIT's noise and
    pix2pix's dropout draw from it)."""
    states = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def set_rng_states(states: dict[str, torch.Tensor], device: torch.device) -> None:
    """Restore :func:`rng_states`; a CUDA state (absent from checkpoints of mrtrans < 0.5) only on CUDA."""
    torch.set_rng_state(states["torch"].cpu())
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"].cpu(), device)


def seed_rank(seed: int, rank: int, world: int, device: torch.device) -> None:
    """After the networks are built (the same weights on every rank), give each DDP rank its own CUDA stream of
    noise and dropout; a single process keeps the run's seed as it is."""
    if world > 1 and device.type == "cuda":
        torch.cuda.manual_seed(seed * 1_000_003 + rank + 1)
