import torch

from mrtrans.losses.cycle import cycle_loss


def test_cycle_loss_is_mean_l1():
    a = torch.zeros(1, 1, 4, 4)
    assert cycle_loss(a, a) == 0
    assert cycle_loss(a + 0.5, a) == 0.5
