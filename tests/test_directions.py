"""Latent directions: SeFa, GANSpace, user-labelled, sidecar files, edits."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ganmodels.directions import (
    EFFECT_WORDS,
    Direction,
    describe_directions,
    describe_effects,
    effect_ends,
    ganspace,
    labelled_direction,
    load_directions,
    measure_effects,
    save_directions,
    sefa,
    style_layers,
)
from tests.conftest import tiny_generator


def test_style_layers_cover_every_ws_index():
    G, _ = tiny_generator()
    idx = sorted({i for i, _, _ in style_layers(G)})
    assert idx == list(range(G.num_ws))


def test_sefa_directions_are_orthonormal_and_sorted():
    G, _ = tiny_generator()
    dirs = sefa(G, k=6)
    V = torch.stack([d.vector for d in dirs])  # [6, w_dim]
    assert torch.allclose(V @ V.T, torch.eye(6), atol=1e-5)
    assert all(d.layers == (0, G.num_ws) and d.method == "sefa" for d in dirs)
    # the first direction changes the styles of its layers more than the last one
    A = torch.cat([m.affine.weight * m.affine.weight_gain for _, _, m in style_layers(G)])
    A = A / A.norm(dim=0, keepdim=True)
    assert (A @ V[0]).norm() >= (A @ V[-1]).norm()


def test_sefa_layer_range_is_checked():
    G, _ = tiny_generator()
    assert sefa(G, layers=(0, 2), k=2)[0].layers == (0, 2)
    with pytest.raises(ValueError):
        sefa(G, layers=(3, 2))


def test_ganspace_components_are_orthonormal_with_decreasing_std():
    G, _ = tiny_generator()
    dirs = ganspace(G, k=5, num_samples=2000, generator=torch.Generator().manual_seed(0))
    V = torch.stack([d.vector for d in dirs])
    assert torch.allclose(V @ V.T, torch.eye(5), atol=1e-4)
    scales = [d.scale for d in dirs]
    assert scales == sorted(scales, reverse=True)


def test_labelled_direction_finds_the_separating_axis():
    g = torch.Generator().manual_seed(0)
    axis = torch.zeros(32)
    axis[7] = 1
    pos = torch.randn(20, 32, generator=g) + 3 * axis
    neg = torch.randn(20, 32, generator=g) - 3 * axis
    d = labelled_direction(pos, neg, name="seven", layers=(0, 4))
    assert d.vector[7] > 0.9
    assert abs(d.vector.norm() - 1) < 1e-5
    with pytest.raises(ValueError):
        labelled_direction(pos[:0], neg, name="x", layers=(0, 4))


def test_edit_strength_zero_is_identity_and_moves_only_its_layers():
    G, _ = tiny_generator()
    d = sefa(G, layers=(2, 4), k=1)[0]
    ws = G.mapping(torch.randn(1, G.z_dim), None)
    assert torch.equal(d.apply(ws, 0.0), ws)
    edited = d.apply(ws, 1.5)
    assert torch.equal(edited[:, :2], ws[:, :2]) and torch.equal(edited[:, 4:], ws[:, 4:])
    assert torch.allclose(edited[:, 2:4] - ws[:, 2:4], 1.5 * d.vector.expand(1, 2, -1), atol=1e-6)
    with torch.no_grad():
        assert not torch.allclose(G.synthesis(edited, noise_mode="const"), G.synthesis(ws, noise_mode="const"))


def test_sidecar_round_trip(tmp_path):
    G, _ = tiny_generator()
    dirs = {d.name: d for d in sefa(G, k=3)}
    dirs["smile"] = Direction("smile", torch.ones(32) / 32**0.5, (1, 3), method="labelled", description="x", scale=2)
    path = save_directions(tmp_path / "d.safetensors", dirs)
    back = load_directions(path)
    assert list(back) == sorted(dirs) or set(back) == set(dirs)
    for k, d in dirs.items():
        assert torch.equal(back[k].vector, d.vector) and back[k].meta() == d.meta()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"nonsense")
    with pytest.raises(ValueError, match="cannot read"):
        load_directions(bad)


def test_sefa_on_stylegan3():
    from ganmodels.stylegan3 import StyleGAN3Config

    fields = StyleGAN3Config.__dataclass_fields__
    kw = {
        k: v
        for k, v in dict(img_resolution=16, z_dim=16, w_dim=16, channel_base=256, channel_max=32).items()
        if k in fields
    }
    torch.manual_seed(0)
    G = StyleGAN3Config(**kw).build().eval()
    dirs = sefa(G, k=3)
    V = torch.stack([d.vector for d in dirs])
    assert torch.allclose(V @ V.T, torch.eye(3), atol=1e-5)


def _disc_renderer(ws: torch.Tensor) -> torch.Tensor:
    """A stand-in generator: a grey disc on white whose radius follows ws[:, 0, 0] and whose darkness follows
    ws[:, 0, 1]; the other coordinates change nothing. ws [N, 2, 4] -> [N, 3, 32, 32] in [-1, 1]."""
    yy, xx = torch.meshgrid(torch.arange(32) + 0.5, torch.arange(32) + 0.5, indexing="ij")
    dist = ((xx - 16) ** 2 + (yy - 16) ** 2).sqrt()  # [32, 32]
    radius = (8 + 3 * ws[:, 0, 0]).clamp(1, 15)[:, None, None]  # [N, 1, 1]
    disc = (dist < radius).float()  # [N, 32, 32]
    value = (0.5 - 0.2 * ws[:, 0, 1]).clamp(0, 0.85)[:, None, None]
    rgb = 1 - disc * (1 - value)  # [N, 32, 32]
    return (rgb[:, None].expand(-1, 3, -1, -1)) * 2 - 1


@pytest.mark.parametrize(
    ("axis", "expected"),
    [
        (0, "to +: larger; to -: smaller"),
        (1, "to +: darker; to -: lighter"),
        (2, "a subtle change"),
    ],
)
def test_measured_effects_name_what_a_direction_changes(axis, expected):
    ws = torch.randn([12, 2, 4], generator=torch.Generator().manual_seed(0)) * 0.5
    vector = torch.zeros(4)
    vector[axis] = 1.0
    d = Direction(name="d", vector=vector, layers=(0, 2), scale=0.5)
    effects = measure_effects(_disc_renderer, ws, d)
    assert set(effects) == {"pixels", *EFFECT_WORDS}
    others = [abs(v) for k, v in effects.items() if k not in ("pixels", ("size", "brightness")[axis % 2])]
    assert max(others) < 0.5  # position, saturation, warmth: unchanged (and the other of size / brightness)
    assert describe_effects(effects) == expected
    flipped = describe_effects(measure_effects(_disc_renderer, ws, dataclasses.replace(d, vector=-vector)))
    if axis < 2:  # the other way round, the words swap ends
        plus, minus = expected.removeprefix("to +: ").split("; to -: ")
        assert flipped == f"to +: {minus}; to -: {plus}"


def test_describe_directions_measures_each_direction_on_the_seeds_samples(tiny_G):
    from ganmodels.generate import seeds_to_ws, synthesize

    plain = sefa(tiny_G, k=3)
    dirs = describe_directions(tiny_G, plain, seeds=4)
    ws = seeds_to_ws(tiny_G, [0, 1, 2, 3], truncation_psi=0.7)
    for d, p in zip(dirs, plain):
        words = describe_effects(measure_effects(lambda v: synthesize(tiny_G, v), ws, p))
        assert d.description == f"{words} ({p.description})"
        assert (d.name, d.layers, d.scale) == (p.name, p.layers, p.scale) and torch.equal(d.vector, p.vector)
    with pytest.raises(ValueError, match="at least two"):
        measure_effects(_disc_renderer, torch.zeros([1, 2, 4]), dirs[0])


def test_effect_ends_reads_back_the_words_of_describe_effects():
    effects = {"pixels": 0.2, "size": 1.5, "brightness": -0.9, "saturation": 0.0, "warmth": 0.1, "x": 0.0, "y": 0.7}
    words = describe_effects(effects)
    assert words == "to +: larger, darker, moves down; to -: smaller, lighter, moves up"
    assert effect_ends(words) == ("smaller, lighter, moves up", "larger, darker, moves down")
    # as describe_directions stores it: the measured words, then the direction's own description in brackets
    assert effect_ends(f"{words} (SeFa direction 1 of the coarse layers (0-3))") == (
        "smaller, lighter, moves up",
        "larger, darker, moves down",
    )
    for other in ("a subtle change", describe_effects({"pixels": 0.2}), "smile (InterFaceGAN)", ""):
        assert effect_ends(other) is None
