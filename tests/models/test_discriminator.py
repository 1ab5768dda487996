"""3-D PatchGAN shapes, hinge losses and LeCam regularisation on known inputs."""

import pytest
import torch

from sweettok.models.discriminator import (
    DiscriminatorConfig,
    LeCamEMA,
    PatchDiscriminator3D,
    hinge_d_loss,
    hinge_g_loss,
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("frames", [1, 5, 17])
def test_patch_logit_shapes(frames):
    torch.manual_seed(0)
    disc = PatchDiscriminator3D(DiscriminatorConfig(base_channels=16, num_downsamples=3))
    logits = disc(torch.rand(2, 3, frames, 32, 48) - 0.5)
    assert logits.shape == (2, 1, frames, 4, 6)
    assert torch.isfinite(logits).all()


def test_images_and_bad_sizes():
    disc = PatchDiscriminator3D(DiscriminatorConfig(base_channels=8, num_downsamples=2))
    assert disc(torch.zeros(1, 3, 16, 16)).shape == (1, 1, 1, 4, 4)
    with pytest.raises(ValueError, match="multiples of 4"):
        disc(torch.zeros(1, 3, 1, 18, 16))
    with pytest.raises(ValueError, match="DiscriminatorConfig.base_channels"):
        DiscriminatorConfig(base_channels=12, norm_groups=8)


def test_hinge_losses_on_known_logits():
    real = torch.tensor([2.0, 0.5, -1.0])  # relu(1 - r) = 0, 0.5, 2  -> mean 2.5/3
    fake = torch.tensor([-2.0, 0.0, 1.0])  # relu(1 + f) = 0, 1, 2    -> mean 1
    assert hinge_d_loss(real, fake).item() == pytest.approx(2.5 / 3 + 1.0)
    assert hinge_g_loss(fake).item() == pytest.approx(1.0 / 3)
    assert hinge_d_loss(torch.full((4,), 1.5), torch.full((4,), -3.0)).item() == 0.0


def test_lecam_ema_and_penalty():
    lecam = LeCamEMA(decay=0.9)
    lecam.update(torch.tensor([1.0, 3.0]), torch.tensor([-1.0]))  # first call copies: 2, -1
    assert lecam.ema_real.item() == pytest.approx(2.0) and lecam.ema_fake.item() == pytest.approx(-1.0)
    lecam.update(torch.tensor([0.0]), torch.tensor([1.0]))
    assert lecam.ema_real.item() == pytest.approx(0.9 * 2.0)
    assert lecam.ema_fake.item() == pytest.approx(0.9 * -1.0 + 0.1)
    # penalty = mean(relu(real - ema_fake)^2) + mean(relu(ema_real - fake)^2)
    real, fake = torch.tensor([0.2, -2.0]), torch.tensor([3.0, 0.8])
    expected = ((0.2 + 0.8) ** 2 + 0.0) / 2 + (0.0 + (1.8 - 0.8) ** 2) / 2
    assert lecam.penalty(real, fake).item() == pytest.approx(expected)
    state = lecam.state_dict()
    assert set(state) == {"ema_real", "ema_fake", "initialised"}


def test_discriminator_learns_to_separate():
    torch.manual_seed(0)
    disc = PatchDiscriminator3D(DiscriminatorConfig(base_channels=8, num_downsamples=2))
    opt = torch.optim.Adam(disc.parameters(), lr=2e-3)
    real = torch.rand(4, 3, 1, 16, 16) * 0.2 - 0.1  # low contrast
    fake = torch.rand(4, 3, 1, 16, 16) - 0.5  # high contrast
    first = hinge_d_loss(disc(real), disc(fake)).item()
    for _ in range(40):
        loss = hinge_d_loss(disc(real), disc(fake))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.25 * first
