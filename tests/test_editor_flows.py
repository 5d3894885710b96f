"""Editor flows: invert into a GAN layer (with live previews, with pivotal tuning), inpaint a mask into a new
layer, .ora project round trip."""

from __future__ import annotations

import threading
import time
import zipfile

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPointF, Qt, QTimer

from editor.document import make_raster_layer
from editor.jobs import render_ws
from editor.latent import state_effective_ws
from editor.project import load_project
from editor.qtimage import qimage_to_rgba
from editor.raster import Rect, resize, to_display, to_uint8
from ganmodels.inpainting import method_label
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
    assert window.runner.job(job.id).description == "Invert (60 steps)"
    seed = window.latent_panel.seed
    assert seed.text() == "\u2014" and not seed.isEnabled()  # no seed, not a seed 0
    window.doc.undo_stack.undo()
    assert len(window.doc.layers) == before
    assert seed.text() == "4" and seed.isEnabled() and seed.minimum() == 0  # the sample below: its seed again


def test_a_second_inversion_inverts_the_picture_not_the_first_ones_render(make_window, tiny_model_file, monkeypatch):  # noqa: F811
    """Invert, then Invert with Pivotal Tuning: the first result covers the picture, yet the second must fit the
    picture (and ignore the mask the first ignored), not the first result's blurrier render."""
    import ganmodels.inversion as inversion

    real_invert = inversion.invert
    seen = []

    def spy(G, image, **kw):
        seen.append((image.copy(), None if kw.get("mask") is None else kw["mask"].copy()))
        yield from real_invert(G, image, **kw)

    monkeypatch.setattr(inversion, "invert", spy)
    window = make_window(model=tiny_model_file)
    window.editor.new_document(16, 16)
    rng = np.random.default_rng(1)
    picture = make_raster_layer(16, 16, name="photo", pixels=np.concatenate(
        [rng.random([16, 16, 3], dtype=np.float32), np.ones([16, 16, 1], np.float32)], axis=2))  # fmt: skip
    doc = window.doc
    doc.add_layer(picture)
    mask = np.zeros((16, 16), np.float32)
    mask[2:6, 3:9] = 1
    doc.set_mask(picture.id, mask)
    assert window.editor.invert_image(steps=5) is not None
    first = doc.active_layer
    assert first.kind == "gan" and doc.active_id == first.id and not first.mask.any()
    assert window.editor.invert_image(steps=5, pti_steps=2) is not None
    second = doc.active_layer
    assert second.id != first.id and second.gan.pti_weights is not None
    assert len(seen) == 2
    np.testing.assert_array_equal(seen[1][0], seen[0][0])  # the same picture, not the first result over it
    np.testing.assert_array_equal(seen[1][1], mask)  # and the same mask
    np.testing.assert_allclose(seen[0][0], picture.pixels[..., :3])
    status = window.statusBar().currentMessage()
    assert f"the picture without {first.name!r}, made by an earlier inversion" in status

    for layer in doc.layers[:2]:  # the background and the picture: only inversions' layers left to see
        doc.set_visible(layer.id, False)
    errors = []
    window.editor.error.connect(lambda title, text: errors.append(text))
    assert window.editor.invert_image(steps=5) is None
    assert errors == ["Only layers made by inversions are visible: there is no picture to invert."]


def test_invert_with_the_models_encoder_refines_with_the_pixel_loss(make_window, tiny_model_file, monkeypatch):  # noqa: F811
    import ganmodels.encoder as encoder_mod
    from ganmodels.components import resave_with
    from ganmodels.encoder import ENCODER_KIND, new_encoder
    from ganmodels.modelfile import load_model

    model = load_model(tiny_model_file)
    E = new_encoder(model.G, channels=8, channel_max=16)
    with_enc = resave_with(
        model,
        tiny_model_file.with_name("tiny-enc.safetensors"),
        add={"encoder": (ENCODER_KIND, E.config.to_dict(), E.state_dict())},
    )
    real = encoder_mod.invert_with_encoder
    calls = []

    def spy(*args, **kw):
        calls.append(kw)
        yield from real(*args, **kw)

    monkeypatch.setattr(encoder_mod, "invert_with_encoder", spy)
    loaded = []
    monkeypatch.setattr("ganmodels.components.load_perceptual", lambda model: loaded.append(model))
    window, _ = sample_window(make_window, with_enc, seed=4)
    before = len(window.doc.layers)
    job = window.editor.invert_image(steps=120)
    assert job is not None and len(window.doc.layers) == before + 1
    assert window.runner.job(job.id).description == "Invert (encoder + 30 steps)"
    assert len(calls) == 1 and calls[0]["num_steps"] == 30 and calls[0].get("perceptual") is None
    assert loaded == []  # nor are the D features loaded for it
    assert window.doc.active_layer.kind == "gan"


def test_invert_out_of_memory_retries_cheaper_and_still_adds_the_layer(make_window, tiny_model_file, monkeypatch):  # noqa: F811
    import ganmodels.inversion as inversion

    real_invert = inversion.invert
    calls = []

    def invert_once_out_of_memory(*args, **kw):
        calls.append(kw.get("perceptual"))
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        yield from real_invert(*args, **kw)

    monkeypatch.setattr(inversion, "invert", invert_once_out_of_memory)
    monkeypatch.setattr("ganmodels.components.load_perceptual", lambda model: "D-features")
    window, _ = sample_window(make_window, tiny_model_file, seed=4)
    before = len(window.doc.layers)
    errors = []
    window.editor.error.connect(lambda title, text: errors.append((title, text)))
    job = window.editor.invert_image(steps=10)
    assert job is not None and not errors
    assert calls == ["D-features", None]  # the retry drops the perceptual term
    assert "Out of memory: retried without the perceptual loss" in window.runner.job(job.id).message
    assert len(window.doc.layers) == before + 1 and window.doc.active_layer.kind == "gan"


def test_oom_variant_moves_a_gpu_model_to_the_cpu_or_drops_the_perceptual_term(tiny_model_file):
    from editor.controllers.editor import oom_variant
    from ganmodels.modelfile import load_model

    model = load_model(tiny_model_file)
    same, cheap = oom_variant(model)
    assert same is model and cheap

    class OnGpu(torch.nn.Module):  # reports a CUDA device without needing one
        def __init__(self) -> None:
            super().__init__()
            self.moved = False

        def parameters(self, recurse: bool = True):
            yield torch.empty(0, device="meta") if not self.moved else torch.empty(0)

        def cpu(self):
            self.moved = True
            return self

    model.G = OnGpu()
    cpu_model, cheap = oom_variant(model)
    assert not cheap and cpu_model is not model and cpu_model.G is not model.G and cpu_model.G.moved
    assert not model.G.moved  # the loaded model is left where it was


def masked_sample(make_window, model_file):  # noqa: F811
    """A window with a sample (seed 2) whose layer has a rectangular mask: (window, that layer, the mask)."""
    window, _ = sample_window(make_window, model_file, seed=2)
    base = window.doc.active_layer
    mask = np.zeros((16, 16), np.float32)
    mask[4:9, 5:11] = 1
    window.doc.set_mask(base.id, mask)
    return window, base, mask


@pytest.mark.parametrize(
    ("method", "tune"), [("telea", 0), ("gan-inversion", 0), ("gan-inversion", 3), ("gan-inpainter", 0)]
)
def test_inpaint_fills_the_mask_into_a_new_layer(make_window, tiny_model_file, method, tune):  # noqa: F811
    if method == "gan-inpainter":
        from ganmodels.components import resave_with
        from ganmodels.ganinpainter import inpainter_component, new_inpainter_net
        from ganmodels.modelfile import load_model

        torch.manual_seed(0)
        net = new_inpainter_net(channels=4, dilations=(1,))
        resave_with(load_model(tiny_model_file), tiny_model_file, add={"inpainter": inpainter_component(net)})
    window, _base, mask = masked_sample(make_window, tiny_model_file)
    doc = window.doc
    flat_before = doc.flatten()
    window.editor.inpaint(method, steps=5, tune_steps=tune)
    new = doc.active_layer
    assert new.name == f"Inpainted ({method_label(method)}{' + PTI' if tune else ''})" and new.kind == "raster"
    assert np.array_equal(new.pixels[..., 3] > 0, mask > 0)  # only the hole is covered
    flat = doc.flatten()
    assert np.array_equal(flat[mask == 0], flat_before[mask == 0])


def test_gan_inpainter_without_a_trained_network_is_a_clear_error(make_window, tiny_model_file, qtbot):  # noqa: F811
    window, _ = sample_window(make_window, tiny_model_file, seed=2)
    errors = []
    window.editor.error.connect(lambda title, msg: errors.append(msg))
    mask = np.zeros((16, 16), np.float32)
    mask[4:9, 5:11] = 1
    window.doc.set_mask(window.doc.active_layer.id, mask)
    n = len(window.doc.layers)
    window.editor.inpaint("gan-inpainter")
    qtbot.waitUntil(lambda: bool(errors), timeout=10000)
    assert "no trained inpainter" in errors[0] and len(window.doc.layers) == n


def test_inpaint_without_a_mask_is_a_clear_error(make_window, tiny_model_file):  # noqa: F811
    window, _ = sample_window(make_window, tiny_model_file, seed=2)
    errors = []
    window.editor.error.connect(lambda title, msg: errors.append(title))
    n = len(window.doc.layers)
    assert window.editor.inpaint("telea") is None
    assert errors == ["Nothing to inpaint"] and len(window.doc.layers) == n


def test_another_method_right_after_an_inpaint_fills_the_same_mask(make_window, tiny_model_file):  # noqa: F811
    window, base, mask = masked_sample(make_window, tiny_model_file)
    doc = window.doc
    window.editor.inpaint("telea")
    first = doc.active_layer
    assert first.name == "Inpainted (Telea Fast Marching)" and not first.mask.any()  # the result is active, no mask
    errors = []
    window.editor.error.connect(lambda title, msg: errors.append(msg))
    window.editor.inpaint("ns")  # another method, with the result still active
    second = doc.active_layer
    assert errors == [] and second.name == "Inpainted (Navier-Stokes)" and second.id != first.id
    assert np.array_equal(second.pixels[..., 3] > 0, mask > 0) and np.array_equal(doc.layer(base.id).mask, mask)

    # A layer that is no inpaint result and has no mask: the message says where the mask is.
    doc.add_layer(make_raster_layer(16, 16, name="paint"))
    assert window.editor.inpaint("telea") is None
    assert len(errors) == 1 and f"The mask is on the layer {base.name!r}" in errors[0]

    # A mask over the whole picture: refused at once, like Invert does, and nothing is added.
    n = len(doc.layers)
    doc.set_mask(base.id, np.ones((16, 16), np.float32))
    doc.set_active(base.id)
    assert window.editor.inpaint("telea") is None
    assert len(errors) == 2 and "covers the whole picture" in errors[1] and len(doc.layers) == n


def test_project_round_trip(make_window, tiny_model_file, tmp_path):  # noqa: F811
    window, _ = sample_window(make_window, tiny_model_file, seed=6)
    doc = window.doc
    rng = np.random.default_rng(0)
    paint = make_raster_layer(16, 16, name="paint", pixels=rng.random([16, 16, 4]).astype(np.float32))
    doc.add_layer(paint)
    doc.set_opacity(paint.id, 0.5)
    doc.set_blend(paint.id, "soft-light")
    mask = np.zeros((16, 16), np.float32)
    mask[2:5, 3:7] = 0.75
    doc.set_mask(paint.id, mask)
    before = [(la.name, la.kind, la.opacity, la.visible, la.blend) for la in doc.layers]
    gan_ws = next(la for la in doc.layers if la.kind == "gan").gan.ws.copy()
    path = tmp_path / "p.ora"
    assert window.editor.save_project(path)
    assert doc.undo_stack.isClean()
    window.editor.new_document(16, 16)
    assert window.editor.open_project(path)
    after = [(la.name, la.kind, round(la.opacity, 4), la.visible, la.blend) for la in doc.layers]
    assert after == [(n, k, round(o, 4), v, b) for n, k, o, v, b in before]
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


def test_failed_save_names_the_file_and_leaves_nothing_behind(make_window, tmp_path, monkeypatch):  # noqa: F811
    window = make_window()
    window.doc.add_layer(make_raster_layer(*window.doc.size, name="paint"))
    messages = []
    window.editor.error.connect(lambda title, msg: messages.append((title, msg)))
    missing = tmp_path / "no-such-folder" / "x.ora"
    assert not window.editor.save_project(missing)
    assert messages == [("Save failed", f"cannot write {missing} (No such file or directory)")]
    assert not window.doc.undo_stack.isClean()  # still unsaved

    # Writing fails half-way (a full disk): the earlier project file stays as it was, no temporary file is left.
    target = tmp_path / "p.ora"
    assert window.editor.save_project(target)
    saved = target.read_bytes()
    window.doc.add_layer(make_raster_layer(*window.doc.size, name="more"))

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("zipfile.ZipFile.writestr", full_disk)
    assert not window.editor.save_project(target)
    assert messages[-1] == ("Save failed", f"cannot write {target} (No space left on device)")
    left = sorted(p.name for p in tmp_path.iterdir() if p.name != "settings.ini")  # (the window's settings)
    assert target.read_bytes() == saved and left == ["p.ora"]


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


# --------------------------------------------------------------------------------------------------------------
# Live previews of an inversion


def test_canvas_draws_a_job_preview_over_the_layers(qtbot, make_window):  # noqa: F811
    window = make_window()
    window.editor.new_document(32, 32)  # white
    window.resize(600, 500)
    window.show()
    qtbot.waitExposed(window)
    window.canvas.zoom_100()
    red = np.zeros([4, 4, 3], np.float32)
    red[..., 0] = 1.0
    window.canvas_controller.show_preview(red, Rect(8, 8, 16, 16))

    def colour_at(x: float, y: float) -> str:
        pos = window.canvas.mapFromScene(QPointF(x, y))
        return window.canvas.viewport().grab().toImage().pixelColor(pos).name()

    assert colour_at(16, 16) == "#ff0000" and colour_at(4, 4) == "#ffffff"
    assert window.canvas.preview_item.sceneBoundingRect().getRect() == (8, 8, 16, 16)
    window.canvas_controller.show_preview(None, None)
    assert colour_at(16, 16) == "#ffffff" and not window.canvas.preview_item.isVisible()
    assert len(window.doc.layers) == 1 and window.doc.undo_stack.count() == 0  # never part of the document


def test_blend_mode_box_changes_the_layer_and_the_canvas_mixes_only_with_layers_below(qtbot, make_window):  # noqa: F811
    window = make_window()
    window.editor.new_document(32, 32)
    doc = window.doc
    backdrop = np.zeros([32, 32, 4], np.float32)
    backdrop[:, :16] = [0.5, 0.5, 1.0, 1.0]  # left half light blue, right half transparent
    doc.set_pixels(doc.layers[0].id, backdrop)
    grey = make_raster_layer(32, 32, name="grey", pixels=np.full([32, 32, 4], [0.5, 0.5, 0.5, 1.0], np.float32))
    doc.add_layer(grey)
    window.resize(600, 500)
    window.show()
    qtbot.waitExposed(window)
    window.canvas.zoom_100()
    box = window.layers_panel.blend
    assert box.isEnabled() and box.currentData() == "normal"

    def colour_at(x: float, y: float) -> str:
        window.canvas_controller.refresh()
        pos = window.canvas.mapFromScene(QPointF(x, y))
        return window.canvas.viewport().grab().toImage().pixelColor(pos).name()

    assert colour_at(8, 16) == colour_at(24, 16) == "#808080"
    box.setCurrentIndex(box.findData("multiply"))
    box.activated.emit(box.currentIndex())  # as a choice in the box does
    assert doc.layer(grey.id).blend == "multiply" and doc.undo_stack.undoText() == "Blend mode Multiply"
    assert window.canvas.isolated
    assert colour_at(8, 16) == "#404080"  # multiplied with the blue below
    assert colour_at(24, 16) == "#808080"  # nothing below: as Normal, not multiplied with the checkerboard
    shown = window.canvas.render_document()
    expected = to_display(doc.flatten())  # the canvas draws what the document composites (Qt's own maths)
    got = np.frombuffer(shown.constBits(), np.uint8).reshape(32, 32, 4)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    doc.undo_stack.undo()
    assert box.currentData() == "normal" and not window.canvas.isolated and colour_at(8, 16) == "#808080"


def test_invert_shows_live_previews_on_the_canvas_then_removes_them(qtbot, make_window, tiny_model_file):  # noqa: F811
    window, _ = sample_window(make_window, tiny_model_file, seed=4, sync=False)
    qtbot.waitUntil(lambda: len(window.doc.layers) == 2, timeout=10000)
    synthesis = window.session.model.G.synthesis
    hook = synthesis.register_forward_pre_hook(lambda *_: time.sleep(0.008))  # at least ~0.6 s of steps
    doc, canvas = window.doc, window.canvas
    count0 = doc.undo_stack.count()
    frames = []

    def on_preview(image, rect):  # runs after the canvas controller's slot (connected first)
        item = canvas.preview_item
        shown = qimage_to_rgba(item.image)[..., :3] if item.isVisible() else None
        frames.append((time.perf_counter(), image, rect, shown, item.pos(), doc.undo_stack.count()))

    window.editor.preview_changed.connect(on_preview)
    job = window.editor.invert_image(steps=60)
    qtbot.waitUntil(lambda: not job.active, timeout=30000)
    qtbot.waitUntil(lambda: doc.undo_stack.count() == count0 + 1, timeout=5000)

    *live, last = frames
    assert len(live) >= 3 and last[1] is None and last[2] is None
    for _t, image, rect, shown, pos, count in live:
        assert rect == Rect(0, 0, 16, 16) and (pos.x(), pos.y()) == (0, 0)
        assert image.shape == (16, 16, 3) and count == count0  # not an undo step
        np.testing.assert_array_equal(shown, to_uint8(resize(image, 16, 16)) / np.float32(255))
    times = [f[0] for f in live]
    assert min(np.diff(times)) >= 0.095  # at most one canvas update per ~100 ms
    assert len({f[1].tobytes() for f in live}) >= 2  # the picture on the canvas changes while the job runs
    assert not canvas.preview_item.isVisible() and canvas.preview_item.image.isNull()
    assert doc.active_layer.kind == "gan" and "dB" in doc.active_layer.name

    frames.clear()
    layers = len(doc.layers)
    job = window.editor.invert_image(steps=400)
    qtbot.waitUntil(lambda: canvas.preview_item.isVisible(), timeout=10000)
    with qtbot.waitSignal(window.runner.job_cancelled, timeout=5000):
        window.runner.cancel(job.id)
    hook.remove()
    qtbot.wait(150)  # a preview still queued must not come back
    assert frames[-1][1] is None and not canvas.preview_item.isVisible()
    assert len(doc.layers) == layers and doc.undo_stack.count() == count0 + 1


# --------------------------------------------------------------------------------------------------------------
# Pivotal tuning


def _gradient_target(window) -> np.ndarray:
    """Put an opaque gradient picture (which the tiny model cannot render) on top; returns it, RGB [16, 16, 3]."""
    y, x = np.mgrid[0:16, 0:16].astype(np.float32) / 15
    rgb = np.stack([x, y, np.full_like(x, 0.3)], axis=-1)
    rgba = np.concatenate([rgb, np.ones_like(x)[..., None]], axis=-1)
    window.doc.add_layer(make_raster_layer(16, 16, name="target", pixels=rgba))
    return rgb


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def test_pti_is_more_faithful_and_only_its_layer_uses_the_tuned_weights(qtbot, make_window, tiny_model_file):  # noqa: F811
    window = make_window(model=tiny_model_file, sync=False)
    window.editor.new_document(16, 16)
    doc, model = window.doc, window.session.model
    target = _gradient_target(window)
    base_weights = {k: v.clone() for k, v in model.G.state_dict().items()}

    count = doc.undo_stack.index()
    window.editor.invert_image(steps=40)
    qtbot.waitUntil(lambda: doc.undo_stack.index() == count + 1, timeout=30000)
    plain = doc.active_layer
    assert plain.gan.pti_weights is None
    plain_psnr = _psnr(plain.pixels[..., :3], target)
    doc.undo_stack.undo()  # the picture to invert is the target again

    window.editor.invert_image(steps=40, pti_steps=30)
    qtbot.waitUntil(lambda: doc.undo_stack.index() == count + 1, timeout=60000)
    layer = doc.active_layer
    key = layer.gan.pti_weights
    assert key and key.startswith(window.session.key + "#pti-") and key in doc.pti_weights
    assert layer.name.startswith("Inverted + PTI")
    pti_psnr = _psnr(layer.pixels[..., :3], target)
    assert pti_psnr > plain_psnr + 1.5, (plain_psnr, pti_psnr)  # same inversion (same seed), then tuned
    np.testing.assert_array_equal(layer.gan.ws, plain.gan.ws)
    for k, v in model.G.state_dict().items():
        assert torch.equal(v, base_weights[k]), k  # the base model is bit-identical

    tuned_G = window.runner.models.get(key).G
    assert tuned_G is not model.G
    np.testing.assert_array_equal(layer.pixels[..., :3], render_ws(tuned_G, layer.gan.ws))
    window.latent_controller.set_strength("first", 1.0)  # a slider render of the tuned layer
    qtbot.waitUntil(lambda: doc.undo_stack.index() == count + 2, timeout=10000)
    layer = doc.layer(layer.id)
    centre = window.session.truncation_centre(layer.gan.class_index)
    ws = state_effective_ws(layer.gan, centre=centre, directions=model.directions)
    np.testing.assert_array_equal(layer.pixels[..., :3], render_ws(tuned_G, ws))
    base_render = render_ws(model.G, ws)
    assert np.abs(layer.pixels[..., :3] - base_render).max() > 0.05  # not what the base model renders

    doc.undo_stack.undo()
    doc.undo_stack.undo()
    assert doc.find(layer.id) is None and doc.active_layer.name == "target"


def test_pti_layers_survive_an_ora_round_trip(qtbot, make_window, tiny_model_file, tmp_path, monkeypatch):  # noqa: F811
    window = make_window(model=tiny_model_file, sync=False)
    window.editor.new_document(16, 16)
    doc = window.doc
    _gradient_target(window)
    asked = []
    from editor.dialogs import PivotalTuningDialog

    def ask_five(dialog):  # the user asks for 5 steps
        dialog.steps.setValue(5)
        return True

    monkeypatch.setattr(PivotalTuningDialog, "exec", ask_five)
    monkeypatch.setattr(window.editor, "invert_image", lambda **kw: asked.append(kw))
    assert window.act_invert_pti in window.generate_menu.actions()
    window.act_invert_pti.trigger()
    assert asked == [{"pti_steps": 5}]
    monkeypatch.undo()
    window.editor.invert_image(steps=10, pti_steps=5)
    qtbot.waitUntil(lambda: doc.active_layer.kind == "gan", timeout=60000)
    layer = doc.active_layer
    key = layer.gan.pti_weights
    dup = doc.duplicate_layer(layer.id)
    assert dup.gan.pti_weights == key
    window.latent_controller.set_strength("first", -1.5)
    qtbot.waitUntil(lambda: dict(doc.layer(dup.id).gan.strengths) == {"first": -1.5}, timeout=10000)
    dup = doc.layer(dup.id)
    saved = {la.name: la.pixels.copy() for la in doc.layers}
    path = tmp_path / "pti.ora"
    assert window.editor.save_project(path)
    with zipfile.ZipFile(path) as z:
        assert [n for n in z.namelist() if n.endswith(".safetensors")] == ["gan-editor/layers/2-pti.safetensors"]

    def check(w) -> None:
        """Both tuned layers share restored weights, and slider renders of them give the pixels seen before."""
        layers = {la.name: la for la in w.doc.layers}
        restored = layers[layer.name].gan.pti_weights
        assert restored and restored != key and layers[dup.name].gan.pti_weights == restored
        for la in (layers[layer.name], layers[dup.name]):
            np.testing.assert_array_equal(np.round(la.pixels * 255), np.round(saved[la.name] * 255))
        w.doc.set_active(layers[dup.name].id)
        stack = w.doc.undo_stack
        n = stack.count()
        w.latent_controller.set_strength("first", 0.0)
        qtbot.waitUntil(lambda: stack.count() == n + 1, timeout=10000)
        w.latent_controller.set_strength("first", -1.5)
        qtbot.waitUntil(lambda: stack.count() == n + 2, timeout=10000)
        np.testing.assert_array_equal(w.doc.layer(layers[dup.name].id).pixels, saved[dup.name])

    assert window.editor.open_project(path)  # the model is loaded: registered at once
    check(window)
    with pytest.raises(ValueError):
        window.runner.models.get(key)  # the replaced document's weights are released

    other = make_window(sync=False)  # no model yet: the weights wait for it
    assert other.editor.open_project(path)
    restored = other.doc.active_layer.gan.pti_weights
    assert restored in other.doc.pti_weights
    with pytest.raises(ValueError):
        other.runner.models.get(restored)
    assert other.open_model(tiny_model_file)
    check(other)


def test_damaged_or_missing_tuned_weights_fall_back_to_the_base_model(tmp_path):
    from editor.document import make_gan_layer
    from editor.latent import GanState
    from editor.project import save_project
    from editor.pti import PtiWeights

    def layer(key):
        state = GanState("m#1", None, "m", np.zeros([2, 3], np.float32), Rect(0, 0, 4, 4), pti_weights=key)
        return make_gan_layer(np.ones([4, 4, 4], np.float32), state, name=f"with {key}")

    pti = PtiWeights.from_tuned("m", {"synthesis.b1.weight": torch.randn(3, 2, dtype=torch.float64)})
    path = tmp_path / "p.ora"
    save_project(path, 4, 4, [layer("m#1#pti-a"), layer("m#1#pti-b")], model_path=None, pti_weights={"m#1#pti-a": pti})
    project = load_project(path, model_key="m#2", model_name="m")
    good, unknown = project.layers
    assert unknown.gan.pti_weights is None  # its weights were not given to save_project: saved as a base layer
    (key,) = project.pti_weights
    assert good.gan.pti_weights == key and key.startswith("m#pti-") and project.warnings == []
    restored = project.pti_weights[key]
    assert restored.model_name == "m" and list(restored.weights) == ["synthesis.b1.weight"]
    assert torch.equal(restored.weights["synthesis.b1.weight"], pti.weights["synthesis.b1.weight"])
    assert restored.weights["synthesis.b1.weight"].dtype == torch.float16

    damaged = tmp_path / "damaged.ora"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(damaged, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, b"garbage" if item.filename.endswith(".safetensors") else data)
    project = load_project(damaged, model_key="m#2", model_name="m")
    assert [la.kind for la in project.layers] == ["gan", "gan"] and project.pti_weights == {}
    assert project.layers[0].gan.pti_weights is None and project.layers[0].gan.model_key == "m#2"
    assert len(project.warnings) == 1 and "tuned weights could not be restored" in project.warnings[0]


def test_inpaint_menu_offers_gan_inversion_with_pivotal_tuning(make_window, tiny_model_file):  # noqa: F811
    window, _ = sample_window(make_window, tiny_model_file, seed=2)
    menu_texts = [a.text() for a in window.inpaint_actions.values()]
    assert "GAN Inversion + Pivotal Tuning" in menu_texts
    mask = np.zeros((16, 16), np.float32)
    mask[4:9, 5:11] = 1
    window.doc.set_mask(window.doc.active_layer.id, mask)
    calls = []
    window.editor.inpaint = lambda method, **kw: calls.append((method, kw))
    window.inpaint_actions["gan-inversion+pti"].trigger()
    assert calls == [("gan-inversion", {"tune_steps": 50})]


def test_inpaint_button_runs_the_method_used_last_and_remembers_it(make_window, tiny_model_file):  # noqa: F811
    window, _ = sample_window(make_window, tiny_model_file, seed=2)
    calls = []
    window.editor.inpaint = lambda method, **kw: calls.append((method, kw))
    button = window.inpaint_button
    assert button.defaultAction() is window.act_inpaint and button.menu() is window.inpaint_menu
    assert [a.text() for a in window.inpaint_menu.actions() if not a.isSeparator()][:2] == [
        "GAN Inversion", "GAN Inversion + Pivotal Tuning"]  # fmt: skip
    assert "GAN Inversion" in window.act_inpaint.toolTip()  # the first choice, before any is made
    window.act_inpaint.trigger()
    window.inpaint_actions["fsr-best"].trigger()  # chosen from the list: runs now, and becomes the button's
    assert "Frequency-Selective, Best" in window.act_inpaint.text()
    window.act_inpaint.trigger()
    window.inpaint_actions["gan-inversion+pti"].trigger()
    window.act_inpaint.trigger()
    pti = ("gan-inversion", {"tune_steps": 50})
    assert calls == [("gan-inversion", {}), ("fsr-best", {}), ("fsr-best", {}), pti, pti]
    assert window.settings.inpaint_method == "gan-inversion+pti"

    window.settings.inpaint_method = "telea"
    other = make_window()  # the next start (the same settings), without a model: a classical method still runs
    assert "Telea Fast Marching" in other.act_inpaint.text() and other.act_inpaint.isEnabled()
    other.editor.inpaint = lambda method, **kw: calls.append((method, kw))
    other.act_inpaint.trigger()
    other.inpaint_actions["gan-inversion"].trigger()  # disabled without a model: does nothing
    assert calls[-1] == ("telea", {}) and other.settings.inpaint_method == "telea"
    other.settings.inpaint_method = "no-such-method"  # e.g. from a later version
    other._update_inpaint_action()
    assert "GAN Inversion" in other.act_inpaint.text() and not other.act_inpaint.isEnabled()  # it needs a model


def test_mask_overlay_is_the_tint_over_the_mask_and_empty_for_no_mask(qapp):
    from editor.qtimage import MASK_OPACITY, MASK_TINT, mask_to_overlay

    mask = np.zeros((5, 7), np.float32)
    empty = qimage_to_rgba(mask_to_overlay(mask))
    assert empty.shape == (5, 7, 4) and not empty.any()  # fully transparent, the right size
    mask[1:3, 2:5] = 1.0
    mask[4, 6] = 0.5
    overlay = qimage_to_rgba(mask_to_overlay(mask))
    np.testing.assert_allclose(overlay[..., 3], mask * MASK_OPACITY, atol=1 / 255)
    np.testing.assert_allclose(overlay[1, 2, :3], np.asarray(MASK_TINT) / 255, atol=0.02)  # (straight alpha)
    assert not overlay[0].any()


def test_a_reopened_layer_binds_only_to_the_model_it_was_made_with(make_window, tiny_model_file, tmp_path):  # noqa: F811
    """Two different files with the same model name are not confused; a layer of a differently shaped model with
    that name is not editable either; a project whose model file is not on this machine binds by name."""
    import shutil

    from ganmodels.modelfile import save_model
    from tests.conftest import tiny_generator

    other = tmp_path / "other" / "tiny.safetensors"  # the same card name, other weights
    other.parent.mkdir()
    G, cfg = tiny_generator(seed=7)
    save_model(other, G, config=cfg, card={"name": "tiny"})
    window, _ = sample_window(make_window, tiny_model_file, seed=11)
    project = tmp_path / "p.ora"
    assert window.editor.save_project(project)
    latent = window.latent_panel

    assert window.open_model(other) and window.editor.open_project(project)
    layer = next(la for la in window.doc.layers if la.kind == "gan")
    window.doc.set_active(layer.id)
    assert layer.gan.model_key == "" and not latent.editor.isEnabled()  # refused: another file
    assert f"made with the model file {tiny_model_file}" in latent.title.text()  # (not "open the model 'tiny'")
    assert latent.seed.text() == "\u2014" and latent.truncation.value() == 1.0  # not the last layer's 0.7
    assert window.open_model(tiny_model_file)
    assert latent.editor.isEnabled()  # its own model again: editable

    wide = tmp_path / "wide" / "tiny.safetensors"  # same name, another latent size
    wide.parent.mkdir()
    G, cfg = tiny_generator(seed=3, w_dim=48)
    save_model(wide, G, config=cfg, card={"name": "tiny"})
    assert window.open_model(wide)
    window.doc.set_active(layer.id)
    assert not latent.editor.isEnabled()

    # The project opened on another machine (its model file is elsewhere): bound by the model's name.
    moved = tmp_path / "moved.safetensors"
    shutil.move(tiny_model_file, moved)
    assert window.open_model(moved) and window.editor.open_project(project)
    layer = next(la for la in window.doc.layers if la.kind == "gan")
    assert layer.gan.model_key == window.session.key and latent.editor.isEnabled()
    # ... but not to a same-named model whose latents have another size (it would not render them)
    assert window.open_model(wide) and window.editor.open_project(project)
    layer = next(la for la in window.doc.layers if la.kind == "gan")
    window.doc.set_active(layer.id)
    assert layer.gan.model_key == window.session.key and not latent.editor.isEnabled()


def test_saving_keeps_the_window_painting_and_names_changes_made_meanwhile(qtbot, make_window, tmp_path, monkeypatch):  # noqa: F811
    import editor.project

    window = make_window()
    window.show()
    doc = window.doc
    original = editor.project.save_project
    on_writer = []

    def slow_save(*args, **kwargs):  # a big project: the write takes a while
        on_writer.append(threading.current_thread() is not threading.main_thread())
        time.sleep(0.4)
        return original(*args, **kwargs)

    monkeypatch.setattr(editor.project, "save_project", slow_save)
    ticks = []
    heartbeat = QTimer()
    heartbeat.timeout.connect(lambda: ticks.append(time.perf_counter()))
    heartbeat.start(10)
    statuses = []
    window.editor.status.connect(statuses.append)
    path = tmp_path / "a.ora"
    assert window.editor.save_project(path)
    assert on_writer == [True] and len(ticks) >= 10  # the GUI thread ran its timers meanwhile
    assert doc.undo_stack.isClean() and statuses[-1] == "Saved a.ora"

    # A change that arrives while the file is written (here a timer; in the app a finished job) is not in the file,
    # so the document stays unsaved and the status says so.
    QTimer.singleShot(100, lambda: doc.add_layer(make_raster_layer(*doc.size, name="late")))
    assert window.editor.save_project(path)
    heartbeat.stop()
    assert [la.name for la in doc.layers][-1] == "late" and not doc.undo_stack.isClean()
    assert statuses[-1] == "Saved a.ora; what changed while it was written is not saved yet"
    assert [la.name for la in load_project(path).layers] == ["Background"]

    # Closing the window while a file is written waits for the file, then closes.
    window.ask_before_discarding = False
    doc.undo_stack.undo()
    QTimer.singleShot(100, window.close)
    assert window._save_project_to(path)
    assert window.isVisible()  # not closed under the writer
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=2000)


def test_save_in_the_close_question_goes_on_only_when_everything_was_saved(qtbot, make_window, tmp_path, monkeypatch):  # noqa: F811
    from PySide6.QtWidgets import QMessageBox

    import editor.project

    window = make_window()
    window.show()
    doc = window.doc
    doc.add_layer(make_raster_layer(*doc.size, name="first edit"))
    window.ask_before_discarding = True
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Save)
    monkeypatch.setattr(window, "save_project_as", lambda: window._save_project_to(tmp_path / "c.ora"))
    original = editor.project.save_project

    def slow_save(*args, **kwargs):
        time.sleep(0.3)
        return original(*args, **kwargs)

    monkeypatch.setattr(editor.project, "save_project", slow_save)
    # A change arrives while the file is written (a finished job): the question's Save does not cover it.
    QTimer.singleShot(100, lambda: doc.add_layer(make_raster_layer(*doc.size, name="job result")))
    assert not window.confirm_discard()
    assert [la.name for la in doc.layers][-1] == "job result" and not doc.undo_stack.isClean()
    assert window.confirm_discard() and doc.undo_stack.isClean()  # asked again, saved again: now it may go on


def test_a_sample_done_while_a_project_opens_joins_it(qtbot, make_window, tiny_model_file, tmp_path, monkeypatch):  # noqa: F811
    import editor.project

    window, _ = sample_window(make_window, tiny_model_file, seed=3)
    path = tmp_path / "p.ora"
    assert window.editor.save_project(path)
    original = editor.project.load_project

    def slow_load(*args, **kwargs):
        time.sleep(0.3)
        return original(*args, **kwargs)

    monkeypatch.setattr(editor.project, "load_project", slow_load)
    QTimer.singleShot(100, lambda: window.editor.generate(11, 0.7))  # (the sync runner finishes it at once)
    assert window.editor.open_project(path)
    assert [la.name for la in window.doc.layers] == ["Background", "Sample 3"]  # the file as saved
    qtbot.waitUntil(lambda: len(window.doc.layers) == 3, timeout=2000)
    assert [la.name for la in window.doc.layers][-1].startswith("Sample 11")


def test_waiting_for_a_file_keeps_pythons_none_alive(qapp):
    """PySide6 6.12's static QCoreApplication.processEvents drops a reference to None per call, and Python 3.11
    aborts when None's count reaches zero: the wait loop of a save (one call per 15 ms) must not use it."""
    import sys

    from editor.offthread import call_off_gui_thread

    before = sys.getrefcount(None)
    assert call_off_gui_thread(lambda: time.sleep(0.3) or 7) == 7  # about 20 turns of the wait loop
    assert sys.getrefcount(None) - before > -5
    with pytest.raises(OSError, match="disk full"):  # the helper's exception is raised on the calling thread
        call_off_gui_thread(lambda: (_ for _ in ()).throw(OSError("disk full")))


def test_clicks_and_keys_during_a_save_are_dropped_not_replayed(qtbot, make_window, tmp_path, monkeypatch):  # noqa: F811
    from PySide6.QtGui import QKeyEvent
    from PySide6.QtWidgets import QApplication

    import editor.project

    window = make_window()
    window.show()
    qtbot.waitExposed(window)
    doc = window.doc
    doc.add_layer(make_raster_layer(*doc.size, name="keep me"))
    original = editor.project.save_project

    def slow_save(*args, **kwargs):
        time.sleep(0.3)
        return original(*args, **kwargs)

    monkeypatch.setattr(editor.project, "save_project", slow_save)
    layer_list = window.layers_panel.list

    def press_delete() -> None:  # an impatient Delete in the Layers panel while the file is written
        for kind in (QKeyEvent.Type.KeyPress, QKeyEvent.Type.KeyRelease):
            QApplication.postEvent(layer_list, QKeyEvent(kind, Qt.Key.Key_Delete, Qt.KeyboardModifier.NoModifier))

    QTimer.singleShot(100, press_delete)
    assert window.editor.save_project(tmp_path / "k.ora")
    qtbot.wait(200)
    assert [la.name for la in doc.layers] == ["Background", "keep me"] and doc.undo_stack.isClean()
    press_delete()  # (the same key, when no file is busy, does delete: the test would notice a dead key)
    qtbot.waitUntil(lambda: len(doc.layers) == 1, timeout=2000)


def _click_cancel_when_the_box_shows(qtbot, seen: list, before_click=None):
    """Poll for the file work box; when it shows, note its bar, call ``before_click()`` if given, and click its
    Cancel button with the mouse (the click must get through while the rest of the input is dropped). Returns a
    function that stops the polling."""
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from editor.offthread import FileWorkDialog

    polling = [True]

    def poll() -> None:
        if not polling[0]:
            return
        boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, FileWorkDialog) and w.isVisible()]
        if not boxes:
            QTimer.singleShot(20, poll)
            return
        box = boxes[0]
        seen.append((box.label.text(), box.bar.maximum(), box.bar.value()))
        if before_click is not None:
            before_click()
        QTest.mouseClick(box.cancel_button, Qt.MouseButton.LeftButton)
        seen.append(box.label.text())

    QTimer.singleShot(20, poll)
    return lambda: polling.__setitem__(0, False)


def test_a_long_write_shows_its_progress_and_cancel_stops_it(qtbot, qapp):
    from editor.offthread import FileProgress, FileWorkCancelled, call_off_gui_thread

    progress = FileProgress("Saving big.ora...")
    steps = []

    def write() -> str:  # reports 100 steps of 20 ms; stops at a check point once cancelled
        for i in range(100):
            progress(i, 100)
            steps.append(i)
            time.sleep(0.02)
        return "written"

    seen: list = []
    _click_cancel_when_the_box_shows(qtbot, seen)
    with pytest.raises(FileWorkCancelled):
        call_off_gui_thread(write, progress=progress, show_after_ms=300)
    label, maximum, value = seen[0]
    assert label == "Saving big.ora..." and maximum == 1000 and 0 < value < 1000  # shown after 300 ms, not at once
    assert seen[1] == "Cancelling..." and 10 <= len(steps) < 100
    # Quick work shows no box.
    seen.clear()
    stop = _click_cancel_when_the_box_shows(qtbot, seen)
    assert call_off_gui_thread(lambda: time.sleep(0.1) or 5, progress=FileProgress("x"), show_after_ms=300) == 5
    qtbot.wait(100)
    stop()
    assert seen == []
    # A read is abandoned at once: the wait ends long before the helper's 5 s.
    _click_cancel_when_the_box_shows(qtbot, seen)
    t = time.perf_counter()
    with pytest.raises(FileWorkCancelled):
        call_off_gui_thread(lambda: time.sleep(5), progress=FileProgress("Opening", abandon=True), show_after_ms=200)
    assert time.perf_counter() - t < 3 and seen[-1] == "Cancelling..."


def test_cancelling_a_save_or_export_keeps_the_old_file_and_unsaved_changes(qtbot, make_window, tmp_path, monkeypatch):  # noqa: F811
    import editor.offthread
    import ganmodels.ora

    window = make_window()
    window.show()
    doc = window.doc
    folder = tmp_path / "files"
    folder.mkdir()
    path, png = folder / "p.ora", folder / "p.png"
    assert window.editor.save_project(path) and window.editor.export_png(png)
    saved, exported = path.read_bytes(), png.read_bytes()
    doc.add_layer(make_raster_layer(*doc.size, name="unsaved", fill=(1.0, 0.0, 0.0, 1.0)))
    original = ganmodels.ora.encode_png
    monkeypatch.setattr(editor.offthread, "SHOW_AFTER_MS", 200)

    def slow_encode(image, *, check=None, **options):  # a big picture: encoding takes a while, checking as it goes
        for _ in range(100):
            check()
            time.sleep(0.02)
        return original(image, check=check, **options)

    monkeypatch.setattr(ganmodels.ora, "encode_png", slow_encode)
    statuses: list[str] = []
    window.editor.status.connect(statuses.append)
    seen: list = []
    _click_cancel_when_the_box_shows(qtbot, seen)
    assert not window._save_project_to(path)
    assert seen[0][0] == "Saving p.ora..." and statuses[-1] == "Save cancelled: p.ora was left as it was"
    assert path.read_bytes() == saved and not doc.undo_stack.isClean() and doc.layers[-1].name == "unsaved"
    assert sorted(p.name for p in folder.iterdir()) == ["p.ora", "p.png"]  # no temporary file left

    import editor.fileio

    monkeypatch.setattr(editor.fileio, "encode_png", slow_encode)
    _click_cancel_when_the_box_shows(qtbot, seen)
    assert not window.editor.export_png(png)
    assert seen[-2][0] == "Exporting p.png..." and statuses[-1] == "Export cancelled: p.png was left as it was"
    assert png.read_bytes() == exported and sorted(p.name for p in folder.iterdir()) == ["p.ora", "p.png"]
    # Without a cancel the same slow save goes through.
    assert window._save_project_to(path) and doc.undo_stack.isClean()
    assert [la.name for la in load_project(path).layers] == ["Background", "unsaved"]


def test_a_warning_that_comes_during_a_save_waits_so_that_cancel_still_works(qtbot, make_window, tmp_path, monkeypatch):  # noqa: F811
    """A failed job's warning box (window-modal) would block the progress box: it is shown after the save."""
    from PySide6.QtWidgets import QMessageBox

    import editor.offthread
    import ganmodels.ora

    window = make_window()
    window.show()
    path = tmp_path / "p.ora"
    assert window.editor.save_project(path)
    saved = path.read_bytes()
    window.doc.add_layer(make_raster_layer(*window.doc.size, name="unsaved", fill=(1.0, 0.0, 0.0, 1.0)))
    original = ganmodels.ora.encode_png
    monkeypatch.setattr(editor.offthread, "SHOW_AFTER_MS", 100)

    def slow_encode(image, *, check=None, **options):
        for _ in range(150):
            check()
            time.sleep(0.02)
        return original(image, check=check, **options)

    monkeypatch.setattr(ganmodels.ora, "encode_png", slow_encode)

    def error_boxes():
        return [b for b in window.findChildren(QMessageBox, "error-box") if b.isVisible()]

    during: list = []

    def fail_a_job() -> None:
        window.editor.error.emit("Sampling failed", "out of memory")
        qtbot.wait(50)
        during.append(len(error_boxes()))

    seen: list = []
    _click_cancel_when_the_box_shows(qtbot, seen, before_click=fail_a_job)
    t = time.perf_counter()
    assert not window._save_project_to(path)
    assert time.perf_counter() - t < 2.5  # the cancel got through (the encode alone takes 3 s)
    assert during == [0] and seen[-1] == "Cancelling..." and path.read_bytes() == saved
    qtbot.waitUntil(lambda: len(error_boxes()) == 1, timeout=2000)  # shown once the save is over
    assert error_boxes()[0].windowTitle() == "Sampling failed" and "out of memory" in error_boxes()[0].text()


def test_write_png_cancelled_at_its_last_check_removes_its_temporary_file_and_encoder_errors_are_reported(
    tmp_path, monkeypatch
):
    import editor.fileio
    from editor.fileio import ImageFileError, write_png

    path = tmp_path / "a.png"
    write_png(path, np.ones((8, 8, 4), np.float32))
    old = path.read_bytes()
    calls: list = []

    def progress(done: int, total: int) -> None:
        calls.append((done, total, (tmp_path / "a.png.tmp").exists()))
        if (done, total) == (1, 1):
            raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        write_png(path, np.zeros((8, 8, 4), np.float32), progress=progress)
    # while encoding: "0 of 0" (not known, the bar stays busy); the last check comes with the new file written
    assert calls[0] == (0, 0, False) and calls[-1] == (1, 1, True)
    assert path.read_bytes() == old and [p.name for p in tmp_path.iterdir()] == ["a.png"]

    def broken_encoder(image, **options):
        raise OSError("encoder error -2 when writing image file")

    monkeypatch.setattr(editor.fileio, "encode_png", broken_encoder)
    with pytest.raises(ImageFileError, match="cannot write"):
        write_png(path, np.zeros((8, 8, 4), np.float32))
    assert path.read_bytes() == old and [p.name for p in tmp_path.iterdir()] == ["a.png"]
