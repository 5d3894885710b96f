"""The e4e-style encoder: trains on the generator's own samples and speeds up inversion."""

from __future__ import annotations

import torch

from ganmodels.encoder import encode, encoder_from_state, invert_with_encoder, new_encoder, train_encoder
from ganmodels.inversion import invert
from ganmodels.losses import psnr
from tests.conftest import tiny_generator


def test_encoder_training_improves_reconstruction_and_helps_inversion():
    G, _ = tiny_generator()
    torch.manual_seed(0)
    E = new_encoder(G, channels=16, channel_max=32)
    steps = list(train_encoder(E, G, num_steps=150, batch_size=8, lr=2e-3, generator=torch.Generator().manual_seed(0)))
    first = sum(s.losses["latent"] for s in steps[:5]) / 5
    last = sum(s.losses["latent"] for s in steps[-5:]) / 5
    assert last < 0.5 * first, (first, last)

    with torch.no_grad():
        ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(11)), None, truncation_psi=0.7)
        target = G.synthesis(ws, noise_mode="const")
    init = encode(E, target)
    assert init.shape == (1, G.num_ws, G.w_dim)
    enc_psnr = float(psnr(G.synthesis(init, noise_mode="const"), target))
    mean_psnr = float(psnr(G.synthesis(G.mapping.w_avg.expand(1, G.num_ws, -1), noise_mode="const"), target))
    assert enc_psnr > mean_psnr + 1

    g = torch.Generator().manual_seed(0)
    with_enc = list(invert_with_encoder(E, G, target, num_steps=20, generator=g))[-1].psnr
    plain = list(invert(G, target, num_steps=20, generator=torch.Generator().manual_seed(0)))[-1].psnr
    assert with_enc > plain


def test_encoder_state_round_trip():
    G, _ = tiny_generator()
    E = new_encoder(G, channels=8, channel_max=16)
    E2 = encoder_from_state(E.config.to_dict(), E.state_dict())
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.equal(E.eval()(x)[0], E2(x)[0])


def test_encoder_training_resumes_exactly_and_refuses_another_generator(tmp_path):
    import pytest

    from ganmodels.encoder import EncoderTrainer, EncoderTrainOptions
    from tests.test_conditional import toy_images

    G, _ = tiny_generator()
    options = EncoderTrainOptions(num_steps=6, batch_size=4, lr=2e-3, seed=3, real_fraction=0.5)
    images, _ = toy_images(8)

    def fresh() -> EncoderTrainer:
        torch.manual_seed(0)
        return EncoderTrainer(new_encoder(G, channels=8, channel_max=16), G, options=options, images=images)

    straight = fresh()
    losses = [s.losses["latent"] for s in straight.run()]
    assert straight.step == 6 and len(losses) == 6

    half = fresh()
    for s in half.run():
        if s.step == 3:
            break
    snap = half.save(tmp_path / "enc.safetensors")
    with pytest.raises(ValueError, match="give the data"):
        EncoderTrainer.load(snap, G)
    resumed = EncoderTrainer.load(snap, G, images=images)
    assert resumed.step == 3
    rest = [s.losses["latent"] for s in resumed.run()]
    assert rest == losses[3:]
    for (k, a), (_, b) in zip(straight.E.state_dict().items(), resumed.E.state_dict().items()):
        assert torch.equal(a, b), k
    assert EncoderTrainer.load(snap, G, num_steps=10, images=images).options.num_steps == 10

    other, _ = tiny_generator(seed=5)
    with pytest.raises(ValueError, match="another generator"):
        EncoderTrainer.load(snap, other)


def test_training_on_real_pictures_too_fits_pictures_the_generator_cannot_draw():
    import numpy as np
    import pytest

    from ganmodels.encoder import EncoderTrainer, EncoderTrainOptions
    from tests.test_conditional import toy_images

    G, _ = tiny_generator()
    x, _ = toy_images(64)  # flat colours with a white square: far from the random tiny G's samples
    reals = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1  # [64, 3, 16, 16]
    scores = {}
    for fraction in (0.0, 0.5):
        torch.manual_seed(0)
        E = new_encoder(G, channels=16, channel_max=32)
        options = EncoderTrainOptions(num_steps=100, batch_size=8, lr=2e-3, real_fraction=fraction)
        for _ in EncoderTrainer(E, G, options=options, images=x).run():
            pass
        with torch.no_grad():
            scores[fraction] = float(psnr(G.synthesis(E(reals)[0], noise_mode="const"), reals).mean())
    assert scores[0.5] > scores[0.0] + 3, scores

    with pytest.raises(ValueError, match="give the data"):
        EncoderTrainer(E, G, options=EncoderTrainOptions(real_fraction=0.5))
    with pytest.raises(ValueError, match="16 px"):
        EncoderTrainer(E, G, options=EncoderTrainOptions(real_fraction=0.5), images=np.zeros([4, 8, 8, 3], np.uint8))


def test_bf16_encoder_training_matches_fp32_closely_and_learns():
    import pytest

    from ganmodels.encoder import EncoderTrainer, EncoderTrainOptions

    G, _ = tiny_generator()
    runs = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        E = new_encoder(G, channels=16, channel_max=32)
        options = EncoderTrainOptions(num_steps=120, batch_size=8, lr=2e-3, precision=precision)
        runs[precision] = [s.losses["latent"] for s in EncoderTrainer(E, G, options=options).run()]
        assert all(p.dtype == torch.float32 for p in E.parameters())  # autocast leaves the weights in fp32
    fp32, bf16 = runs["fp32"], runs["bf16"]
    assert bf16[0] == pytest.approx(fp32[0], rel=0.05)  # same batch, same weights: only rounding differs
    assert bf16[0] != fp32[0]  # ... but it does differ: the bf16 path really ran under autocast
    assert sum(bf16[-5:]) < 0.5 * sum(bf16[:5]), bf16
    with pytest.raises(ValueError, match="precision"):
        EncoderTrainOptions(precision="fp16")


def test_encoder_refinement_uses_the_pixel_loss_unless_given_d_features():
    from ganmodels.losses import DiscriminatorPerceptual
    from tests.conftest import TINY_D

    G, _ = tiny_generator()
    torch.manual_seed(0)
    E = new_encoder(G, channels=8, channel_max=16)
    target = torch.rand(1, 3, 16, 16) * 2 - 1
    plain = list(invert_with_encoder(E, G, target, num_steps=3, generator=torch.Generator().manual_seed(0)))
    assert set(plain[-1].losses) == {"l2", "noise_reg"}
    feats = DiscriminatorPerceptual(TINY_D.build())
    with_d = list(
        invert_with_encoder(E, G, target, num_steps=3, perceptual=feats, generator=torch.Generator().manual_seed(0))
    )
    assert "perceptual" in with_d[-1].losses and with_d[-1].losses["perceptual"] > 0
    # the same start (the encoder's guess), different paths
    assert not torch.equal(plain[-1].ws, with_d[-1].ws)
