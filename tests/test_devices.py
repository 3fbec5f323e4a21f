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
