import torch

from mrtrans.methods.pool import ImagePool


def test_pool_state_round_trip_gives_the_same_future():
    torch.manual_seed(0)
    pool = ImagePool(3, seed=1)
    for _ in range(5):
        pool.query(torch.randn(2, 1, 4, 4))
    state = pool.state_dict()
    copy = ImagePool(0)
    copy.load_state_dict(state)
    batch = torch.randn(4, 1, 4, 4)
    assert torch.equal(pool.query(batch), copy.query(batch))
    assert torch.equal(ImagePool(0).query(batch), batch)


def test_pool_of_a_bf16_run_feeds_an_fp32_discriminator_after_resume():
    pool = ImagePool(3, seed=0)
    pool.query(torch.rand(4, 1, 8, 8, dtype=torch.bfloat16))  # what autocast on CUDA produces
    state = pool.state_dict()
    assert state["images"].dtype == torch.float32
    old_style = {**state, "images": state["images"].bfloat16()}  # pools saved before the fix kept bf16
    for saved in (state, old_style):
        resumed = ImagePool(3)
        resumed.load_state_dict(saved)
        out = resumed.query(torch.rand(5, 1, 8, 8))
        assert out.dtype == torch.float32
        torch.nn.Conv2d(1, 1, 3)(out)  # "Input type (BFloat16) and bias type (float)" before the fix
