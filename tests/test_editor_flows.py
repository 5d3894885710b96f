"""Editor flows: invert into a GAN layer, inpaint a mask into a new layer, .ora project round trip."""

from __future__ import annotations

import numpy as np
import pytest

from editor.document import make_raster_layer
from tests.test_editor_app import make_window, sample_window  # noqa: F401 - fixture re-use


def test_invert_adds_a_gan_layer_close_to_the_picture(make_window, tiny_model_file):  # noqa: F811
    window, _ = sample_window(make_window, tiny_model_file, seed=4)
    before = len(window.doc.layers)
    job = window.editor.invert_image(steps=60)
    assert job is not None
    assert len(window.doc.layers) == before + 1
    layer = window.doc.active_layer
    assert layer.kind == "gan" and layer.gan.ws.shape == (6, 32)
    assert "dB" in layer.name
    window.doc.undo_stack.undo()
    assert len(window.doc.layers) == before


@pytest.mark.parametrize("method", ["telea", "gan-inversion"])
def test_inpaint_fills_the_mask_into_a_new_layer(make_window, tiny_model_file, method):  # noqa: F811
    window, _ = sample_window(make_window, tiny_model_file, seed=2)
    doc = window.doc
    base = doc.active_layer
    mask = np.zeros((16, 16), np.float32)
    mask[4:9, 5:11] = 1
    doc.set_mask(base.id, mask)
    flat_before = doc.flatten()
    window.editor.inpaint(method, steps=5)
    new = doc.active_layer
    assert new.name == f"Inpainted ({method})" and new.kind == "raster"
    assert np.array_equal(new.pixels[..., 3] > 0, mask > 0)  # only the hole is covered
    flat = doc.flatten()
    assert np.array_equal(flat[mask == 0], flat_before[mask == 0])


def test_inpaint_without_a_mask_is_a_clear_error(make_window, tiny_model_file):  # noqa: F811
    window, _ = sample_window(make_window, tiny_model_file, seed=2)
    errors = []
    window.editor.error.connect(lambda title, msg: errors.append(title))
    n = len(window.doc.layers)
    assert window.editor.inpaint("telea") is None
    assert errors == ["Nothing to inpaint"] and len(window.doc.layers) == n


def test_project_round_trip(make_window, tiny_model_file, tmp_path):  # noqa: F811
    window, _ = sample_window(make_window, tiny_model_file, seed=6)
    doc = window.doc
    rng = np.random.default_rng(0)
    paint = make_raster_layer(16, 16, name="paint", pixels=rng.random([16, 16, 4]).astype(np.float32))
    doc.add_layer(paint)
    doc.set_opacity(paint.id, 0.5)
    mask = np.zeros((16, 16), np.float32)
    mask[2:5, 3:7] = 0.75
    doc.set_mask(paint.id, mask)
    before = [(la.name, la.kind, la.opacity, la.visible) for la in doc.layers]
    gan_ws = next(la for la in doc.layers if la.kind == "gan").gan.ws.copy()
    path = tmp_path / "p.ora"
    assert window.editor.save_project(path)
    assert doc.undo_stack.isClean()
    window.editor.new_document(16, 16)
    assert window.editor.open_project(path)
    after = [(la.name, la.kind, round(la.opacity, 4), la.visible) for la in doc.layers]
    assert after == [(n, k, round(o, 4), v) for n, k, o, v in before]
    gan = next(la for la in doc.layers if la.kind == "gan")
    assert np.array_equal(gan.gan.ws, gan_ws) and gan.gan.seed == 6 and gan.gan.model_key
    reopened = next(la for la in doc.layers if la.name == "paint")
    assert np.array_equal(reopened.mask, mask)
    assert np.array_equal(np.round(reopened.pixels * 255), np.round(paint.pixels * 255))


def test_damaged_project_gives_an_error_and_keeps_the_document(make_window, tmp_path):  # noqa: F811
    window = make_window()
    n = len(window.doc.layers)
    bad = tmp_path / "bad.ora"
    bad.write_bytes(b"garbage")
    errors = []
    window.editor.error.connect(lambda title, msg: errors.append(title))
    assert not window.editor.open_project(bad)
    assert errors == ["Cannot open project"] and len(window.doc.layers) == n


def test_window_opens_a_foreign_checkpoint(make_window, tmp_path):  # noqa: F811
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.ConvTranspose2d(8, 3, 4, 1, 0, bias=False), nn.Tanh())
    path = tmp_path / "g.pth"
    torch.save({f"main.{k}": v for k, v in net.state_dict().items()}, path)
    window = make_window()
    assert window.open_model(path)
    assert window.session.model.kind == "dcgan" and window.session.model.resolution == 4
