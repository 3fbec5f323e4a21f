import pytest

from mrtrans.errors import MrtransError


@pytest.mark.parametrize(
    "name, local_rank, world, cuda, expected",
    [
        ("auto", 0, 1, False, "cpu"),
        ("auto", 3, 4, True, "cuda:3"),
        ("cuda", 2, 4, True, "cuda:2"),  # torch.cuda.set_device needs the index
        ("cuda", 0, 1, True, "cuda:0"),
        ("cuda:1", 0, 1, True, "cuda:1"),
        ("cpu", 1, 2, True, "cpu"),  # CPU training on a GPU machine
    ],
)
def test_device_plan_gives_each_process_its_device_and_backend(name, local_rank, world, cuda, expected):
    from mrtrans.devices import plan_device
    from mrtrans.training.loop import process_group_backend

    device = plan_device(name, local_rank, world, cuda_available=cuda)
    assert str(device) == expected
    assert process_group_backend(device) == ("nccl" if expected.startswith("cuda") else "gloo")


@pytest.mark.parametrize(
    "name, world, cuda, message",
    [("cuda:0", 2, True, "one GPU"), ("cuda", 1, False, "not available"), ("gpu", 1, True, "not a device")],
)
def test_device_plan_refuses_what_cannot_work(name, world, cuda, message):
    from mrtrans.devices import plan_device

    with pytest.raises(MrtransError, match=message):
        plan_device(name, 0, world, cuda_available=cuda)


@pytest.mark.parametrize(
    "device, amp, capability, bf16, words",
    [
        ("cuda:0", True, (9, 0), True, "bfloat16 autocast"),  # H100/H200
        ("cuda:0", True, (8, 0), True, "bfloat16 autocast"),  # A100
        ("cuda:0", True, (7, 0), False, "no native bfloat16"),  # V100: emulated bf16 would be slower than fp32
        ("cuda:0", True, (7, 5), False, "no native bfloat16"),  # T4
        ("cuda:0", False, (9, 0), False, "TF32 off"),
        ("cpu", True, None, False, "float32 on the CPU"),
    ],
)
def test_bf16_only_where_the_gpu_computes_it_natively(device, amp, capability, bf16, words):
    import torch

    from mrtrans.devices import precision_plan

    use, text = precision_plan(torch.device(device), amp, capability)
    assert use is bf16 and words in text


def test_fp32_means_no_tf32():
    import torch

    from mrtrans.devices import set_fp32_matmul

    before = torch.backends.cudnn.allow_tf32
    try:
        set_fp32_matmul(strict=True)
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        set_fp32_matmul(strict=False)
        assert torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32 = before


def test_grid_jobs_are_spread_over_the_visible_gpus():
    from mrtrans.devices import grid_devices

    assert grid_devices(8, "auto", 8) == [f"cuda:{i}" for i in range(8)]
    assert grid_devices(5, "cuda", 2) == ["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0"]
    assert grid_devices(3, "auto", 0) == ["auto"] * 3  # no GPU: the runs decide (the CPU)
    assert grid_devices(2, "cpu", 4) == ["cpu", "cpu"] and grid_devices(2, "cuda:1", 4) == ["cuda:1", "cuda:1"]


def test_grid_threads_share_the_cores_and_respect_the_callers_thread_limit(monkeypatch):
    """Jobs share the usable cores, and never get more torch threads than the calling process has (OMP_NUM_THREADS,
    the suite's one thread per worker): two threads per job on a loaded 2-core machine were 5x slower (issue 34)."""
    import torch

    from mrtrans.experiments import grid

    monkeypatch.setattr(grid, "usable_cores", lambda: 8)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(8)
        assert [grid.threads_per_job(j) for j in (1, 2, 3, 16)] == [8, 4, 2, 1]
        torch.set_num_threads(1)
        assert grid.threads_per_job(1) == 1 and grid.threads_per_job(2, threads=3) == 3  # --threads wins
    finally:
        torch.set_num_threads(before)


def test_checkpoints_save_and_restore_the_cuda_generator_state(monkeypatch):
    """A resume on CUDA continues UNIT's noise and pix2pix's dropout: the device's generator state is saved and set
    back (CUDA mocked: a stand-in generator state)."""
    import torch

    from mrtrans import devices

    state = {"cuda": torch.arange(16, dtype=torch.uint8)}
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device=None: state["cuda"].clone())
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda new, device=None: state.update(cuda=new.clone()))
    cuda = torch.device("cuda:0")
    saved = devices.rng_states(cuda)
    assert set(saved) == {"torch", "cuda"} and torch.equal(saved["cuda"], torch.arange(16, dtype=torch.uint8))
    state["cuda"] = torch.zeros(16, dtype=torch.uint8)  # the generator moves on
    torch.rand(3)
    devices.set_rng_states(saved, cuda)
    assert torch.equal(state["cuda"], torch.arange(16, dtype=torch.uint8))
    assert torch.equal(torch.get_rng_state(), saved["torch"])
    devices.set_rng_states({"torch": saved["torch"]}, cuda)  # a checkpoint of mrtrans < 0.5: no CUDA state, no error
    assert set(devices.rng_states(torch.device("cpu"))) == {"torch"}


def test_each_ddp_rank_draws_its_own_noise(monkeypatch):
    import torch

    from mrtrans import devices

    seeds = []
    monkeypatch.setattr(torch.cuda, "manual_seed", seeds.append)
    for rank in range(3):
        devices.seed_rank(7, rank, 3, torch.device(f"cuda:{rank}"))
    devices.seed_rank(7, 0, 1, torch.device("cuda:0"))  # one process: the run's own seed, untouched
    devices.seed_rank(7, 1, 2, torch.device("cpu"))
    assert len(seeds) == 3 and len(set(seeds)) == 3
