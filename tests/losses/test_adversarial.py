import torch

from mrtrans.losses.adversarial import gan_loss


def test_lsgan_targets():
    assert gan_loss(torch.ones(2, 1, 4, 4), True) == 0
    assert gan_loss(torch.zeros(2, 1, 4, 4), True) == 1
    assert gan_loss(torch.zeros(2, 1, 4, 4), False) == 0
    assert torch.isclose(gan_loss(torch.full((1, 1, 2, 2), 0.5), False), torch.tensor(0.25))
