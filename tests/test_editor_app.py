"""The main window end to end (offscreen): models, samples, sliders, painting, files, panels, entry point."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_generator
from PIL import Image, PngImagePlugin
from PySide6.QtCore import QCoreApplication, QEvent, QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QImage, QKeySequence, QWheelEvent
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QLabel, QMessageBox
from qt_helpers import drag_slider, window_factory

from editor.dialogs import ResizeImageDialog
from editor.document import make_raster_layer
from editor.fileio import decode_ws, layer_metadata, read_png_metadata
from editor.qtimage import qimage_to_rgba, rgba_to_qimage
from editor.raster import Rect, place_rgb, to_uint8
from editor.settings import Settings
from ganmodels.generate import seeds_to_ws, synthesize, to_float01


@pytest.fixture
def make_window(qtbot, tmp_path):
    yield from window_factory(qtbot, tmp_path)


def sample_window(make_window, model_file, *, seed=3, truncation=0.7, sync=True):
    """A window with the tiny model, a document of the model's size and one GAN sample on top."""
    window = make_window(model=model_file, sync=sync)
    res = window.session.model.resolution
    window.editor.new_document(res, res)
    return window, window.editor.generate(seed, truncation)


def expected_sample(model, seed, truncation):
    return to_float01(synthesize(model.G, seeds_to_ws(model.G, [seed], truncation_psi=truncation)))[0]


def test_window_without_a_model(make_window):
    window = make_window()
    assert not window.session.loaded
    assert "No model loaded" in window.model_panel.status.text()
    assert not window.act_sample.isEnabled() and not window.latent_panel.editor.isEnabled()
    assert not window.act_invert.isEnabled() and not window.act_invert_pti.isEnabled()
    enabled = {m for m, act in window.inpaint_actions.items() if act.isEnabled()}
    assert enabled and all(not m.startswith("gan") for m in enabled) and "telea" in enabled  # classical ones work
    assert window.editor.generate(1) is None  # explains instead of failing
    assert [la.name for la in window.doc.layers] == ["Background"] and window.doc.size == (512, 512)
    shown = window.canvas.render_document()
    assert (shown.width(), shown.height()) == (512, 512) and shown.pixelColor(10, 10).name() == "#ffffff"


def test_window_with_a_model_shows_its_card_and_directions(make_window, tiny_model_file):
    window = make_window(model=tiny_model_file)
    values = {k: v.text() for k, v in window.model_panel.values.items()}
    assert values["Name"] == "tiny" and values["Resolution"] == "16 x 16 px" and values["Licence"] == "MIT"
    assert values["Training data"] == "none"
    assert list(window.latent_panel.sliders) == ["first"]
    assert window.act_sample.isEnabled() and window.act_invert.isEnabled()
    enabled = {m for m, act in window.inpaint_actions.items() if act.isEnabled()}
    assert enabled == set(window.inpaint_actions) - {"gan-inpainter"}  # the tiny model has no trained inpainter
    assert "has none" in window.inpaint_actions["gan-inpainter"].statusTip()
    assert window.device_label.text().startswith("CPU")


def test_direction_sliders_show_what_their_ends_do(make_window, tmp_path):
    from ganmodels.directions import Direction
    from ganmodels.modelfile import save_model

    G, cfg = tiny_generator()
    v = torch.zeros(cfg.w_dim)
    v[0] = 1.0
    measured = "to +: larger, more colourful, moves up; to -: smaller, greyer, moves down (SeFa direction 1)"
    path = save_model(
        tmp_path / "described.safetensors",
        G,
        config=cfg,
        card={"name": "described"},
        directions={
            "measured": Direction("measured", v, (0, 3), method="sefa", description=measured),
            "plain": Direction("plain", -v, (0, 3), description="smile"),
        },
    )
    window = make_window(model=path)
    panel = window.latent_panel
    assert list(panel.sliders) == ["measured", "plain"] and list(panel.captions) == ["measured"]
    captions = panel.captions["measured"]
    assert (captions.minus, captions.plus) == (
        "\u2212 smaller, greyer, moves down",
        "larger, more colourful, moves up +",
    )
    assert measured in captions.toolTip()
    captions.resize(2000, captions.height())
    assert captions.texts() == (captions.minus, captions.plus)  # room for both: whole
    captions.resize(captions.right_margin + 120, captions.height())
    left, right = captions.texts()  # too narrow: both shortened, within the room
    assert left.endswith("\u2026") and right.endswith("\u2026") and left.startswith("\u2212")
    fm = captions.fontMetrics()
    assert fm.horizontalAdvance(left) + fm.horizontalAdvance(right) <= 120
    window.session.load(path)  # loading it again rebuilds them, once each
    assert list(window.latent_panel.captions) == ["measured"]


def test_model_panel_shows_metrics_readably(make_window, tmp_path):
    from ganmodels.modelfile import save_model

    G, cfg = tiny_generator()
    path = tmp_path / "m.safetensors"
    metrics = {"SWDx1e3_avg": 114.8312, "SWDx1e3_64": 17.0, "FID_own_D_features": 11.92, "diversity_ratio": 1.067}
    card = {"name": "m", "description": "a test", "kimg": 12.5, "hours": 0.25, "hardware": "2 CPU cores",
            "metrics": metrics, "metrics_note": "lower is closer"}  # fmt: skip
    save_model(path, G, config=cfg, card=card)
    window = make_window(model=path)
    values = window.model_panel.values
    assert values["Metrics"].text() == (
        "SWD \u00d710\u00b3 (mean): 115\nSWD \u00d710\u00b3 (64 px): 17\nFID (own D features): 11.9\n"
        "diversity ratio: 1.07"
    )
    assert values["Metrics"].toolTip() == "lower is closer" and values["Name"].toolTip() == "a test"
    assert QLabel.text(values["Metrics"]).count("<br>") == 3  # one metric per line (the label shows rich text)
    assert values["Trained"].text() == "12.5 kimg (0.2 h on 2 CPU cores)"
    assert values["Licence"].toolTip() == ""


def test_generate_adds_a_gan_layer_with_the_backend_pixels(make_window, tiny_model_file):
    window, _job = sample_window(make_window, tiny_model_file, seed=3, truncation=0.7)
    layer = window.doc.active_layer
    assert layer.kind == "gan" and layer.name == "Sample 3" and len(window.doc.layers) == 2
    expected = expected_sample(window.session.model, 3, 0.7)
    np.testing.assert_array_equal(layer.pixels[..., :3], expected)
    assert (layer.pixels[..., 3] == 1).all()
    assert layer.gan.seed == 3 and layer.gan.truncation == pytest.approx(0.7)
    assert window.latent_panel.editor.isEnabled() and window.latent_panel.seed.value() == 3
    window.doc.undo_stack.undo()
    assert [la.name for la in window.doc.layers] == ["Background"]


def _render_with_direction(model, layer, strength):
    ws = torch.from_numpy(np.array(layer.gan.ws))[None]
    ws = model.G.mapping.w_avg.lerp(ws, layer.gan.truncation)
    ws = model.directions["first"].apply(ws, strength)
    return to_float01(synthesize(model.G, ws))[0]


def test_slider_drag_previews_then_records_one_undo_step(make_window, tiny_model_file):
    window, _ = sample_window(make_window, tiny_model_file)
    layer = window.doc.active_layer
    pixels0, count0 = layer.pixels.copy(), window.doc.undo_stack.count()
    slider = window.latent_panel.sliders["first"]
    previews = []
    window.latent_controller.frame_applied.connect(previews.append)
    drag_slider(slider.slider, [350, 400, 450])  # 300 is 0; 450 is +1.5 (scale 1)
    assert len(previews) == 3
    layer = window.doc.layer(layer.id)
    assert window.doc.undo_stack.count() == count0 + 1
    assert layer.gan.strengths == {"first": pytest.approx(1.5)}
    assert not np.array_equal(layer.pixels, pixels0)
    np.testing.assert_allclose(
        layer.pixels[..., :3], _render_with_direction(window.session.model, layer, 1.5), atol=1e-6
    )
    window.doc.undo_stack.undo()
    layer = window.doc.layer(layer.id)
    np.testing.assert_array_equal(layer.pixels, pixels0)
    assert dict(layer.gan.strengths) == {}
    assert window.latent_panel.sliders["first"].value() == 0.0  # the panel follows undo
    window.doc.undo_stack.redo()
    assert window.doc.layer(layer.id).gan.strengths == {"first": pytest.approx(1.5)}


def test_slider_with_the_threaded_runner(qtbot, make_window, tiny_model_file):
    window, _job = sample_window(make_window, tiny_model_file, sync=False)
    qtbot.waitUntil(lambda: len(window.doc.layers) == 2, timeout=10000)
    layer = window.doc.active_layer
    pixels0, count0 = layer.pixels.copy(), window.doc.undo_stack.count()
    drag_slider(window.latent_panel.sliders["first"].slider, list(range(310, 500, 10)))  # 19 fast moves
    qtbot.waitUntil(lambda: window.doc.undo_stack.count() == count0 + 1, timeout=10000)
    layer = window.doc.layer(layer.id)
    strength = window.latent_panel.sliders["first"].value()
    assert layer.gan.strengths == {"first": pytest.approx(strength)}
    np.testing.assert_allclose(
        layer.pixels[..., :3], _render_with_direction(window.session.model, layer, strength), atol=1e-6
    )
    window.doc.undo_stack.undo()
    np.testing.assert_array_equal(window.doc.layer(layer.id).pixels, pixels0)


def test_a_sample_finishing_after_a_model_switch_is_dropped_with_a_message(
    make_window, tiny_model_file, qtbot, monkeypatch
):
    from ganmodels.modelfile import save_model

    other = tiny_model_file.with_name("other.safetensors")
    G, cfg = tiny_generator(seed=5)
    save_model(other, G, config=cfg, card={"name": "other"})
    import threading

    import editor.jobs

    window = make_window(model=tiny_model_file, sync=False)
    window.editor.new_document(16, 16)
    n = len(window.doc.layers)
    release, real = threading.Event(), editor.jobs.synthesize

    def held_synthesize(*args, **kwargs):  # the worker has the old model's G: it finishes after the switch
        release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(editor.jobs, "synthesize", held_synthesize)
    job = window.editor.generate(77)
    qtbot.waitUntil(lambda: window.runner.job(job.id).state == editor.jobs.JobState.RUNNING)
    assert window.open_model(other)
    release.set()
    qtbot.waitUntil(lambda: "dropped" in window.statusBar().currentMessage(), timeout=10000)
    assert window.runner.job(job.id) is not None and len(window.doc.layers) == n
    assert window.statusBar().currentMessage().startswith("Sample (seed 77) dropped: another model was opened")


def test_undo_during_a_slider_drag_keeps_history_and_picture_in_step(make_window, tiny_model_file):
    window, _ = sample_window(make_window, tiny_model_file, seed=3, truncation=0.7)
    layer_id = window.doc.active_id
    model = window.session.model
    drag_slider(window.latent_panel.sliders["first"].slider, [400])  # committed: "Direction first: +1.00"
    stack = window.doc.undo_stack
    assert stack.text(stack.index() - 1) == "Direction first: +1.00"
    slider = window.latent_panel.truncation.slider
    slider.setSliderDown(True)  # a truncation drag is under way ...
    slider.setValue(20)
    window.act_undo.trigger()  # ... when Ctrl+Z undoes the direction
    slider.setSliderDown(False)
    layer = window.doc.layer(layer_id)
    assert dict(layer.gan.strengths) == {} and layer.gan.truncation == pytest.approx(0.7)
    np.testing.assert_array_equal(layer.pixels[..., :3], expected_sample(model, 3, 0.7))  # as the History says
    assert stack.text(stack.index() - 1).startswith("New sample") and stack.canRedo()
    window.act_redo.trigger()
    assert dict(window.doc.layer(layer_id).gan.strengths) != {}


def test_truncation_seed_and_reset_are_undoable(make_window, tiny_model_file):
    window, _ = sample_window(make_window, tiny_model_file, seed=3, truncation=0.7)
    layer_id = window.doc.active_id
    model = window.session.model
    window.latent_panel.seed.setValue(4)
    np.testing.assert_array_equal(window.doc.layer(layer_id).pixels[..., :3], expected_sample(model, 4, 0.7))
    drag_slider(window.latent_panel.truncation.slider, [100])  # psi 1.0
    np.testing.assert_array_equal(window.doc.layer(layer_id).pixels[..., :3], expected_sample(model, 4, 1.0))
    drag_slider(window.latent_panel.sliders["first"].slider, [500])
    window.latent_panel.reset.click()
    assert dict(window.doc.layer(layer_id).gan.strengths) == {}
    np.testing.assert_array_equal(window.doc.layer(layer_id).pixels[..., :3], expected_sample(model, 4, 1.0))
    stack = window.doc.undo_stack
    assert [stack.text(i) for i in range(stack.count())][-4:] == [
        "Seed 4",
        "Truncation 1.00",
        "Direction first: +2.00",
        "Reset directions",
    ]
    for _ in range(4):
        stack.undo()
    np.testing.assert_array_equal(window.doc.layer(layer_id).pixels[..., :3], expected_sample(model, 3, 0.7))


def test_painting_on_the_canvas_is_one_undoable_stroke(qtbot, make_window):
    window = make_window()
    window.resize(1100, 800)
    window.show()
    qtbot.waitExposed(window)
    window.canvas.zoom_100()
    window.brush.set_size(20)
    window.brush.set_hardness(0.8)
    vp = window.canvas.viewport()
    layer = window.doc.active_layer

    def at(x, y) -> QPoint:
        return window.canvas.mapFromScene(QPointF(x, y))

    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=at(200, 250))
    for x in range(210, 321, 10):
        qtbot.mouseMove(vp, pos=at(x, 250))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=at(320, 250))
    mask = layer.mask.copy()
    assert mask[250, 200:321].min() > 0.99  # along the stroke
    outside = np.ones_like(mask, bool)
    outside[238:263, 188:333] = False
    assert mask[outside].max() == 0.0  # nothing away from it
    assert window.doc.undo_stack.count() == 1
    overlay = window.canvas.mask_item.image
    assert overlay.pixelColor(260, 250).alpha() > 100 and overlay.pixelColor(260, 300).alpha() == 0
    window.act_undo.trigger()
    assert not layer.mask.any() and window.canvas.mask_item.image.pixelColor(260, 250).alpha() == 0
    window.act_redo.trigger()
    np.testing.assert_array_equal(layer.mask, mask)

    # Painting on a hidden mask shows it again (not a blind stroke).
    window.act_show_mask.trigger()
    assert not window.act_show_mask.isChecked() and not window.canvas.mask_item.isVisible()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=at(200, 300))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=at(200, 300))
    assert window.act_show_mask.isChecked() and window.canvas.mask_item.isVisible()
    assert window.statusBar().currentMessage().startswith("Mask shown again")


def test_brush_hardness_steps_with_braces(make_window):
    window = make_window()
    window.brush.set_hardness(0.5)
    assert window.act_harder.shortcut().toString() == "}" and window.act_softer.shortcut().toString() == "{"
    window.act_harder.trigger()
    assert window.brush.hardness == pytest.approx(0.6) and window.hardness_slider.value() == 60
    for _ in range(6):
        window.act_harder.trigger()
    assert window.brush.hardness == 1.0  # up to a hard edge
    for _ in range(12):
        window.act_softer.trigger()
    assert window.brush.hardness == 0.0 and window.hardness_slider.value() == 0


def test_canvas_zooms_about_the_pointer_and_pans(qtbot, make_window):
    window = make_window()
    window.resize(1100, 800)
    window.show()
    qtbot.waitExposed(window)
    canvas = window.canvas
    canvas.zoom_100()
    assert canvas.zoom == 1.0
    pointer = canvas.mapFromScene(QPointF(100, 120))
    before = canvas.to_document(QPointF(pointer))
    wheel = QWheelEvent(
        QPointF(pointer),
        QPointF(canvas.viewport().mapToGlobal(pointer)),
        QPoint(0, 0),
        QPoint(0, 240),  # two notches
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.ControlModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(canvas.viewport(), wheel)
    assert canvas.zoom == pytest.approx(2**0.5)
    after = canvas.to_document(QPointF(pointer))
    assert abs(after.x() - before.x()) < 1 and abs(after.y() - before.y()) < 1  # the point stayed under the pointer
    vp = canvas.viewport()
    start = canvas.to_document(QPointF(400, 300))
    qtbot.mousePress(vp, Qt.MouseButton.MiddleButton, pos=QPoint(400, 300))
    qtbot.mouseMove(vp, pos=QPoint(350, 260))
    qtbot.mouseRelease(vp, Qt.MouseButton.MiddleButton, pos=QPoint(350, 260))
    moved = canvas.to_document(QPointF(400, 300))
    assert moved.x() - start.x() == pytest.approx(50 / canvas.zoom, abs=1) and moved.y() > start.y()
    assert window.doc.undo_stack.count() == 0  # panning never paints
    canvas.zoom_to_fit()
    assert canvas.zoom < 2 and window.zoom_label.text().endswith("%")


def test_brush_shortcuts_and_preferences(make_window, tmp_path):
    window = make_window()
    assert window.act_bigger.shortcut() == QKeySequence("]") and window.act_smaller.shortcut() == QKeySequence("[")
    assert window.act_paint.shortcut() == QKeySequence("B") and window.act_erase.shortcut() == QKeySequence("E")
    size = window.brush.size
    window.act_bigger.trigger()
    assert window.brush.size > size and window.size_box.value() == round(window.brush.size)
    window.act_smaller.trigger()
    window.act_smaller.trigger()
    assert window.brush.size < size
    window.act_erase.trigger()
    assert window.brush.erase and not window.act_paint.isChecked()
    window.act_paint.trigger()
    assert not window.brush.erase
    window.hardness_slider.setValue(25)
    assert window.brush.hardness == 0.25
    stored = Settings.at_path(tmp_path / "settings.ini")
    assert stored.brush_size == window.brush.size and stored.brush_hardness == 0.25
    again = make_window()
    assert again.brush.size == window.brush.size and again.brush.hardness == 0.25


def test_export_png_round_trip_with_metadata(make_window, tiny_model_file, tmp_path):
    window, _ = sample_window(make_window, tiny_model_file, seed=5)
    gan = window.doc.active_layer
    out = tmp_path / "out.png"
    assert window.editor.export_png(out)
    with Image.open(out) as im:
        pixels = np.asarray(im.convert("RGBA"))
    np.testing.assert_array_equal(pixels, to_uint8(window.doc.flatten()))
    meta = read_png_metadata(out)
    assert meta["export"] == "flattened" and meta["size"] == [16, 16]
    (entry,) = meta["layers"]
    assert entry["gan"]["seed"] == 5 and entry["gan"]["model"] == "tiny" and entry["gan"]["truncation"] == 0.7
    np.testing.assert_array_equal(decode_ws(entry["ws"]), gan.gan.ws)

    # A translucent raster layer exported alone keeps its alpha exactly.
    rng = np.random.default_rng(0)
    rgba = rng.random([16, 16, 4]).astype(np.float32)
    window.doc.add_layer(make_raster_layer(16, 16, name="paint", pixels=rgba))
    out2 = tmp_path / "layer.png"
    assert window.editor.export_png(out2, what="layer")
    with Image.open(out2) as im:
        assert im.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(im), to_uint8(rgba))
    assert read_png_metadata(out2)["layers"] == []


def test_an_exported_layer_png_opens_as_the_gan_layer_it_came_from(make_window, tiny_model_file, tmp_path):
    """Export Layer writes the latent beside the pixels; opening that PNG gives back an editable GAN layer (same
    latent, directions, opacity and blend), while a flattened export or another size opens as a picture."""
    window, _ = sample_window(make_window, tiny_model_file, seed=5)
    layer = window.doc.active_layer
    drag_slider(window.latent_panel.sliders["first"].slider, [350, 400])  # +1.0
    window.doc.set_opacity(layer.id, 0.5)
    window.doc.set_blend(layer.id, "multiply")
    layer = window.doc.layer(layer.id)
    assert layer.gan.strengths == {"first": pytest.approx(1.0)}
    out = tmp_path / "layer.png"
    assert window.editor.export_png(out, what="layer")

    other = make_window(model=tiny_model_file)
    assert other.editor.open_image(out)
    (opened,) = other.doc.layers
    assert opened.gan is not None and opened.name == layer.name
    np.testing.assert_array_equal(opened.gan.ws, layer.gan.ws)
    assert opened.gan.strengths == {"first": pytest.approx(1.0)} and opened.gan.seed == 5
    assert opened.opacity == pytest.approx(0.5) and opened.blend == "multiply"
    np.testing.assert_array_equal(to_uint8(opened.pixels), to_uint8(layer.pixels))
    assert "as the GAN layer it was exported from" in other.statusBar().currentMessage()
    # It edits like the original: moving the slider back renders the seed's plain sample again.
    drag_slider(other.latent_panel.sliders["first"].slider, [350, 300])
    edited = other.doc.layers[0]
    assert dict(edited.gan.strengths) == {"first": pytest.approx(0.0)} or dict(edited.gan.strengths) == {}
    np.testing.assert_allclose(edited.pixels[..., :3], expected_sample(other.session.model, 5, 0.7), atol=1e-6)

    # Without the model loaded the layer keeps its latent and says which model it needs.
    bare = make_window()
    assert bare.editor.open_image(out) and bare.doc.layers[0].gan is not None
    assert "open its model (tiny)" in bare.statusBar().currentMessage()

    # A flattened export is a picture: its layers are only in the project.
    flat = tmp_path / "flat.png"
    assert window.editor.export_png(flat)
    assert other.editor.open_image(flat) and other.doc.layers[0].gan is None

    # A layer PNG whose size no longer matches its record (scaled elsewhere) is a picture too.
    with Image.open(out) as im:
        meta = im.info["gan-editor"]
        bigger = im.resize((32, 32))
    info = PngImagePlugin.PngInfo()
    info.add_itxt("gan-editor", meta)
    bigger.save(tmp_path / "bigger.png", pnginfo=info)
    assert other.editor.open_image(tmp_path / "bigger.png") and other.doc.layers[0].gan is None

    # A damaged latent opens the pixels as a picture and says so.
    broken = json.loads(meta)
    broken["layers"][0]["ws"]["base64"] = "AAAA"
    info = PngImagePlugin.PngInfo()
    info.add_itxt("gan-editor", json.dumps(broken))
    with Image.open(out) as im:
        im.save(tmp_path / "broken.png", pnginfo=info)
    assert other.editor.open_image(tmp_path / "broken.png") and other.doc.layers[0].gan is None
    assert "could not be restored" in other.statusBar().currentMessage()
    # Odd values anywhere in the chunk never stop the picture from opening.
    odd_opacity = [{**json.loads(meta)["layers"][0], "opacity": "x"}]
    for key, value in (("size", 5), ("layers", [{"gan": 1}]), ("layers", odd_opacity)):
        odd = {**json.loads(meta), key: value}
        info = PngImagePlugin.PngInfo()
        info.add_itxt("gan-editor", json.dumps(odd))
        with Image.open(out) as im:
            im.save(tmp_path / "odd.png", pnginfo=info)
        assert other.editor.open_image(tmp_path / "odd.png") and other.doc.layers[0].gan is None


def test_export_png_from_the_menu_leaves_the_project_unsaved(make_window, tiny_model_file, tmp_path, monkeypatch):
    """A PNG holds only pixels: after File > Export the layers, masks and latents are still unsaved work."""
    window, _ = sample_window(make_window, tiny_model_file, seed=5)
    out = tmp_path / "exported.png"
    monkeypatch.setattr("editor.mainwindow.QFileDialog.getSaveFileName", lambda *a, **k: (str(out), ""))
    assert window.isWindowModified() and not window.doc.undo_stack.isClean()
    window.choose_export("flattened")
    assert out.is_file()
    assert window.isWindowModified() and not window.doc.undo_stack.isClean()


def test_file_work_on_the_gui_thread_shows_a_wait_cursor_and_what_it_does(
    make_window, tiny_model_file, tmp_path, monkeypatch
):
    window, _ = sample_window(make_window, tiny_model_file, seed=5)
    seen = []

    def spy(real):
        def call(*args, **kwargs):
            cursor = QApplication.overrideCursor()
            seen.append((cursor.shape() if cursor else None, window.statusBar().currentMessage()))
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(window.editor, "save_project", spy(window.editor.save_project))
    monkeypatch.setattr(window.editor, "export_png", spy(window.editor.export_png))
    dialog = "editor.mainwindow.QFileDialog.getSaveFileName"
    monkeypatch.setattr(dialog, lambda *a, **k: (str(tmp_path / "p.ora"), ""))
    assert window.save_project()
    monkeypatch.setattr(dialog, lambda *a, **k: (str(tmp_path / "e.png"), ""))
    window.choose_export("flattened")
    assert seen == [(Qt.CursorShape.WaitCursor, "Saving p.ora..."), (Qt.CursorShape.WaitCursor, "Exporting e.png...")]
    assert QApplication.overrideCursor() is None and (tmp_path / "p.ora").is_file() and (tmp_path / "e.png").is_file()

    # A question asked meanwhile (a picture over the size limit) is asked with the normal cursor.
    asked = []
    monkeypatch.setattr(
        "editor.mainwindow.QMessageBox.question",
        lambda *a, **k: asked.append(QApplication.overrideCursor()) or QMessageBox.StandardButton.Cancel,
    )
    with window.busy("Opening x.png..."):
        assert window.confirm_downscale("x.png is too large") is False
        assert QApplication.overrideCursor().shape() == Qt.CursorShape.WaitCursor
    assert asked == [None] and QApplication.overrideCursor() is None


def test_corrupt_image_shows_an_error_and_changes_nothing(qtbot, make_window, tmp_path):
    window = make_window()
    window.doc.add_layer(make_raster_layer(512, 512, name="keep me"))
    before = ([la.id for la in window.doc.layers], window.doc.size, window.doc.undo_stack.count())
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20)
    assert not window.open_image(bad)
    boxes = [b for b in window.findChildren(QMessageBox) if b.isVisible()]
    assert boxes and "broken.png" in boxes[-1].text()
    assert ([la.id for la in window.doc.layers], window.doc.size, window.doc.undo_stack.count()) == before
    (tmp_path / "notes.txt").write_text("hello")
    window.open_paths([str(tmp_path / "notes.txt")])  # a dropped non-image
    assert ([la.id for la in window.doc.layers], window.doc.size) == before[:2]


def test_save_goes_to_the_projects_file_and_unsaved_changes_can_be_saved_first(
    make_window, tiny_model_file, tmp_path, monkeypatch
):
    from editor.project import load_project

    window, _ = sample_window(make_window, tiny_model_file, seed=5)
    doc, target, asked = window.doc, tmp_path / "p.ora", []
    monkeypatch.setattr(
        "editor.mainwindow.QFileDialog.getSaveFileName", lambda *a, **k: asked.append(a) or (str(target), "")
    )
    assert window.save_project() and len(asked) == 1  # no project file yet: Save asks where
    assert doc.path == target and doc.undo_stack.isClean()
    doc.add_layer(make_raster_layer(16, 16, name="more"))
    assert window.save_project() and len(asked) == 1  # Ctrl+S: to its own file, no question
    assert doc.undo_stack.isClean() and [la.name for la in load_project(target).layers][-1] == "more"
    assert window.save_project_as() and len(asked) == 2  # Save As always asks

    window.ask_before_discarding = True
    answers = []
    monkeypatch.setattr("editor.mainwindow.QMessageBox.question", lambda *a, **k: answers.pop(0))
    buttons = QMessageBox.StandardButton
    doc.add_layer(make_raster_layer(16, 16, name="even more"))
    answers[:] = [buttons.Cancel]
    assert not window.confirm_discard() and not doc.undo_stack.isClean()
    answers[:] = [buttons.Save]
    assert window.confirm_discard() and doc.undo_stack.isClean()  # saved, then it goes on
    assert [la.name for la in load_project(target).layers][-1] == "even more"
    doc.add_layer(make_raster_layer(16, 16, name="dropped"))
    answers[:] = [buttons.Discard]
    assert window.confirm_discard() and not doc.undo_stack.isClean()
    window.ask_before_discarding = False


def test_dropped_files_open_one_document_and_say_what_was_left(make_window, tmp_path, monkeypatch):
    window = make_window()
    photo, other = tmp_path / "photo.png", tmp_path / "other.png"
    Image.fromarray(np.full([12, 20, 3], 90, np.uint8)).save(photo)
    Image.fromarray(np.full([8, 8, 3], 10, np.uint8)).save(other)
    (tmp_path / "notes.txt").write_text("hello")
    window.open_paths([str(tmp_path / "notes.txt"), str(photo), str(other)])
    assert window.doc.size == (20, 12) and window.doc.layers[0].name == "photo"
    assert "not opened: notes.txt, other.png" in window.statusBar().currentMessage()

    folder = tmp_path / "folder"
    folder.mkdir()
    window.open_paths([str(folder)])
    boxes = [b for b in window.findChildren(QMessageBox) if b.isVisible()]
    assert boxes and boxes[-1].text() == "folder is a folder." and window.doc.size == (20, 12)

    # A project and a picture dropped over unsaved work: asked once; Cancel keeps everything.
    project = tmp_path / "p.ora"
    assert window.editor.save_project(project)
    window.doc.add_layer(make_raster_layer(20, 12, name="unsaved"))
    window.ask_before_discarding = True
    asked = []
    monkeypatch.setattr(
        "editor.mainwindow.QMessageBox.question",
        lambda *a, **k: asked.append(a) or QMessageBox.StandardButton.Cancel,
    )
    window.open_paths([str(project), str(other)])
    assert len(asked) == 1 and [la.name for la in window.doc.layers] == ["photo", "unsaved"]
    window.ask_before_discarding = False  # (so that closing the window at the end is not refused by "Cancel")


@pytest.mark.parametrize("accept", [True, False])
def test_too_large_picture_is_offered_downscaled(make_window, tmp_path, monkeypatch, accept):
    monkeypatch.setattr("editor.fileio.MAX_DOCUMENT_PIXELS", 2_000)
    window = make_window()
    path = tmp_path / "poster.png"
    Image.fromarray(np.full([60, 100, 3], 200, np.uint8)).save(path)
    asked = []
    window.editor.confirm_downscale = lambda message: asked.append(message) or accept
    before = window.doc.size
    assert window.open_image(path) is accept
    assert len(asked) == 1 and "poster.png is 100x60" in asked[0] and "downscaled to 50x30" in asked[0]
    if accept:
        assert window.doc.size == (50, 30) and window.doc.layers[0].name == "poster"
        assert np.allclose(window.doc.layers[0].pixels[..., :3], 200 / 255)
    else:  # declined: no error box offering what was just declined, a status message instead
        assert window.doc.size == before
        assert not [b for b in window.findChildren(QMessageBox) if b.isVisible()]
        status = window.statusBar().currentMessage()
        assert status.startswith("Not opened: poster.png is 100x60") and "downscaled" not in status


def test_open_image_applies_exif_orientation(make_window, tmp_path):
    window = make_window()
    arr = np.zeros([20, 40, 3], np.uint8)
    arr[:, :20] = (255, 0, 0)  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "photo.jpg"
    Image.fromarray(arr).save(path, exif=exif, quality=95)
    window.open_paths([str(path)])  # as a drag-and-drop does
    assert window.doc.size == (20, 40)  # width and height swapped
    layer = window.doc.layers[0]
    assert layer.name == "photo" and layer.pixels[2, 10, 0] > 0.9 and layer.pixels[37, 10, 0] < 0.1
    assert window.doc.undo_stack.count() == 0 and "photo.jpg" in window.windowTitle()


def test_layers_panel_edits_go_through_the_undo_stack(make_window):
    window = make_window()
    panel, doc = window.layers_panel, window.doc
    panel.add_button.click()
    assert [la.name for la in doc.layers] == ["Background", "Layer 1"]
    item = panel.list.item(0)  # the top layer is listed first
    item.setText("Sky")
    assert doc.layers[1].name == "Sky"
    item = panel.list.item(0)
    item.setCheckState(Qt.CheckState.Unchecked)
    assert not doc.layers[1].visible
    panel.set_active(doc.layers[1].id)
    drag_slider(panel.opacity, [80, 60, 40])
    assert doc.layers[1].opacity == 0.4
    panel.duplicate_button.click()
    assert [la.name for la in doc.layers] == ["Background", "Sky", "Sky copy"]
    panel.list.order_dropped.emit([doc.layers[0].id, doc.layers[2].id, doc.layers[1].id])  # Background to the top
    assert [la.name for la in doc.layers] == ["Sky", "Sky copy", "Background"]
    assert panel.row_ids() == [doc.layers[2].id, doc.layers[1].id, doc.layers[0].id]
    panel.delete_button.click()
    stack = doc.undo_stack
    texts = [stack.text(i) for i in range(stack.count())]
    assert texts[:6] == ["Add layer", "Rename layer", "Hide layer", "Layer opacity", "Duplicate layer", "Move layer"]
    assert len(texts) == 7  # the opacity drag is one step
    while stack.canUndo():
        stack.undo()
    assert [la.name for la in doc.layers] == ["Background"]


def test_backend_jobs_report_progress_cancel_and_errors(qtbot, make_window):
    window = make_window(sync=False)
    results = []

    def steps(n, delay, *, fail=False):
        for i in range(n):
            time.sleep(delay)
            yield {"step": i + 1, "num_steps": n, "message": f"step {i + 1}"}
        if fail:
            raise ValueError("the mask is empty")
        return f"result of {n}"

    job = window.editor.run_backend_job("inpaint", lambda: steps(5, 0.01), results.append, description="Inpaint")
    qtbot.waitUntil(lambda: results == ["result of 5"], timeout=5000)
    _item, row = window.jobs_panel.rows[job.id]
    assert row.title.text() == "Inpaint" and row.bar.value() == 1000 and row.message.text().startswith("done")

    long_job = window.editor.run_backend_job("invert", lambda: steps(500, 0.01), results.append, description="Invert")
    with qtbot.waitSignal(window.runner.job_progress, timeout=5000):
        pass
    _item, row = window.jobs_panel.rows[long_job.id]
    t0 = time.perf_counter()
    with qtbot.waitSignal(window.runner.job_cancelled, timeout=2000):
        row.cancel.click()
    assert time.perf_counter() - t0 < 0.5 and row.message.text() == "cancelled" and row.cancel.isHidden()
    assert window.statusBar().currentMessage() == "Cancelled: Invert"

    window.editor.run_backend_job("inpaint", lambda: steps(2, 0.01, fail=True), results.append, description="Inpaint")
    qtbot.waitUntil(lambda: any(b.isVisible() for b in window.findChildren(QMessageBox)), timeout=5000)
    box = next(b for b in window.findChildren(QMessageBox) if b.isVisible())
    assert box.windowTitle() == "Inpaint failed" and "the mask is empty" in box.text()

    stale = window.editor.run_backend_job("inpaint", lambda: steps(500, 0.01), results.append, description="Fill")
    with qtbot.waitSignal(window.runner.job_progress, timeout=5000):
        pass
    t0 = time.perf_counter()
    window.editor.new_document(64, 64)  # the document the job was made for is gone: the job stops, saying why
    qtbot.waitUntil(lambda: not stale.active, timeout=5000)
    qtbot.wait(50)
    assert time.perf_counter() - t0 < 5 and stale.state.value == "cancelled" and results == ["result of 5"]
    assert window.statusBar().currentMessage() == "Cancelled: Fill (its document was closed)"
    assert window.jobs_panel.rows[stale.id][1].message.text() == "cancelled: its document was closed"


def test_crop_and_resize_from_the_image_menu_keep_gan_layers_editable(make_window, tiny_model_file, monkeypatch):
    window = make_window(model=tiny_model_file)
    window.editor.new_document(48, 32)
    window.editor.generate(5, 0.7)
    layer = window.doc.active_layer
    assert layer.gan.placement == Rect(8, 0, 32, 32)
    mask = np.zeros([32, 48], np.float32)
    mask[4:20, 12:36] = 1.0
    window.doc.set_mask(layer.id, mask)
    assert window.act_crop_mask.isEnabled() and window.act_crop_square.isEnabled()

    window.act_crop_mask.trigger()
    assert window.doc.size == (24, 16) and window.canvas.render_document().width() == 24
    layer = window.doc.layer(layer.id)
    assert layer.gan.placement == Rect(-4, -4, 32, 32)
    assert "(24 x 16)" in window.windowTitle() and window.statusBar().currentMessage().startswith("Cropped to 24 x 16")
    drag_slider(window.latent_panel.sliders["first"].slider, [350, 400, 450])  # +1.5: renders where it shows
    layer = window.doc.layer(layer.id)
    expected = place_rgb(_render_with_direction(window.session.model, layer, 1.5), Rect(-4, -4, 32, 32), 24, 16)
    np.testing.assert_allclose(layer.pixels, expected, atol=1e-6)

    window.act_crop_square.trigger()
    assert window.doc.size == (16, 16) and window.doc.layer(layer.id).gan.placement == Rect(-8, -4, 32, 32)
    assert not window.act_crop_square.isEnabled()

    def accept_with_width(dialog):
        dialog.width_box.setValue(40)  # the height follows
        return 1

    monkeypatch.setattr(ResizeImageDialog, "exec", accept_with_width)
    window.act_resize_image.trigger()
    assert window.doc.size == (40, 40) and window.doc.layer(layer.id).gan.placement == Rect(-20, -10, 80, 80)
    assert window.statusBar().currentMessage() == "Resized to 40 x 40"
    stack = window.doc.undo_stack
    assert [stack.text(i) for i in range(stack.count())][-4:] == [
        "Crop to 24 x 16",
        "Direction first: +1.50",
        "Crop to 16 x 16",
        "Resize image to 40 x 40",
    ]
    for _ in range(4):
        stack.undo()
    assert window.doc.size == (48, 32) and window.doc.layer(layer.id).gan.placement == Rect(8, 0, 32, 32)
    np.testing.assert_array_equal(window.doc.layer(layer.id).mask, mask)

    window.doc.set_mask(layer.id, np.zeros([32, 48], np.float32))
    window.act_crop_mask.trigger()  # nothing to crop to: explained, nothing changes
    assert window.doc.size == (48, 32) and "has no mask" in window.statusBar().currentMessage()


def test_resize_dialog_keeps_proportions_and_the_size_limit(qtbot):
    dialog = ResizeImageDialog(300, 200, max_pixels=1_000_000)
    qtbot.addWidget(dialog)
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert not ok.isEnabled()  # the same size: nothing to do
    dialog.height_box.setValue(100)
    assert dialog.values() == (150, 100) and ok.isEnabled()
    dialog.keep.setChecked(False)
    dialog.width_box.setValue(2000)
    assert dialog.values() == (2000, 100) and ok.isEnabled()
    dialog.height_box.setValue(600)  # 1.2 MP
    assert not ok.isEnabled() and "up to 1 MP" in dialog.note.text()


def test_resize_scales_on_a_helper_thread_and_a_cancel_changes_nothing(qtbot, make_window, monkeypatch):
    import threading

    from editor.controllers import editor as editor_module

    window = make_window(sync=False)
    window.doc.set_mask(window.doc.active_id, np.ones([window.doc.size[1], window.doc.size[0]], np.float32))
    before = [(layer.id, layer.pixels.copy()) for layer in window.doc.saved_layers()]
    count = window.doc.undo_stack.count()
    threads, real_scale = [], editor_module.scale_layers

    def cancelled(layers, size, width, height, *, progress):
        threads.append(threading.current_thread())
        progress.cancel()
        progress(0, len(layers))  # what a cancel does at the next layer: raises
        raise AssertionError("not reached")

    monkeypatch.setattr(editor_module, "scale_layers", cancelled)
    size = window.doc.size
    assert window.editor.resize_image(30, 20) is False
    assert threads and threads[0] is not threading.main_thread()
    assert window.doc.size == size and window.doc.undo_stack.count() == count
    for (layer_id, pixels), layer in zip(before, window.doc.saved_layers()):
        assert layer.id == layer_id and np.array_equal(layer.pixels, pixels)
    assert window.statusBar().currentMessage() == "Resize cancelled: the picture is as it was"

    calls = []

    def counted(*args, **kw):
        calls.append(threading.current_thread())
        return real_scale(*args, **kw)

    monkeypatch.setattr(editor_module, "scale_layers", counted)
    assert window.editor.resize_image(30, 20) is True
    assert calls[0] is not threading.main_thread()
    assert window.doc.size == (30, 20) and window.doc.undo_stack.count() == count + 1
    layer = window.doc.saved_layers()[0]
    assert layer.pixels.shape == (20, 30, 4) and layer.mask.shape == (20, 30) and (layer.mask > 0.99).all()
    with pytest.raises(ValueError, match="not this document"):  # layers of another size are refused
        window.doc.resize_image(10, 10, layers=window.doc.saved_layers())


def test_cropping_cancels_backend_jobs_made_for_the_old_picture(qtbot, make_window):
    window = make_window(sync=False)
    results = []

    def steps(n):
        for i in range(n):
            time.sleep(0.01)
            yield {"step": i + 1, "num_steps": n, "message": f"step {i + 1}"}
        return "done"

    job = window.editor.run_backend_job("inpaint", lambda: steps(500), results.append, description="Fill")
    with qtbot.waitSignal(window.runner.job_progress, timeout=5000):
        pass
    window.doc.crop(Rect(0, 0, 100, 100))
    qtbot.waitUntil(lambda: not job.active, timeout=5000)
    qtbot.wait(50)
    assert job.state.value == "cancelled" and results == []
    assert window.statusBar().currentMessage() == "Cancelled: Fill (the picture was cropped or resized)"
    window.doc.undo_stack.undo()  # a job started now lands in the picture as it is now
    window.editor.run_backend_job("inpaint", lambda: steps(2), results.append, description="Fill")
    qtbot.waitUntil(lambda: results == ["done"], timeout=5000)


def test_main_entry_point_opens_files(qtbot, tmp_path, tiny_model_file, monkeypatch):
    from editor import app
    from editor.mainwindow import MainWindow

    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path / "config"))
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "config"))
    monkeypatch.setattr(QApplication, "exec", lambda _self: 0)  # return instead of running the event loop
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # the recovery folder, not the user's
    image = tmp_path / "pic.png"
    Image.fromarray(np.full([24, 32, 3], 200, np.uint8)).save(image)
    before = set(QApplication.topLevelWidgets())
    # --no-compile: main's last resort against a stuck compiler thread is os._exit, fatal inside pytest
    assert app.main(["--no-compile", str(tiny_model_file), str(image)]) == 0
    (window,) = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w not in before]
    qtbot.addWidget(window)
    assert window.isVisible() and window.session.loaded and window.doc.size == (32, 24)
    assert "pic.png" in window.windowTitle()
    window.close()  # stops its job runner
    assert app.main(["--device", "no-such-device"]) == 2


@pytest.fixture
def two_direction_model_file(tmp_path):
    from ganmodels.directions import Direction
    from ganmodels.modelfile import save_model

    G, cfg = tiny_generator()
    eye = torch.eye(cfg.w_dim)
    path = tmp_path / "two.safetensors"
    directions = {
        "first": Direction("first", eye[0], (0, 3), method="manual"),
        "second": Direction("second", eye[1], (0, G.num_ws), method="manual"),
    }
    save_model(path, G, config=cfg, card={"name": "two"}, directions=directions)
    return path


@pytest.mark.parametrize("sync", [True, False])
def test_two_sliders_in_a_row_keep_both_edits(qtbot, make_window, two_direction_model_file, sync):
    window, _job = sample_window(make_window, two_direction_model_file, sync=sync)
    qtbot.waitUntil(lambda: len(window.doc.layers) == 2, timeout=10000)
    layer_id = window.doc.active_id
    count0 = window.doc.undo_stack.count()
    names = list(window.latent_panel.sliders)
    assert len(names) >= 2
    drag_slider(window.latent_panel.sliders[names[0]].slider, [350, 400])
    qtbot.waitUntil(lambda: window.doc.undo_stack.count() == count0 + 1, timeout=10000)
    drag_slider(window.latent_panel.sliders[names[1]].slider, [250, 200])
    qtbot.waitUntil(lambda: window.doc.undo_stack.count() == count0 + 2, timeout=10000)
    strengths = dict(window.doc.layer(layer_id).gan.strengths)
    assert strengths == {names[0]: pytest.approx(1.0), names[1]: pytest.approx(-1.0)}


@pytest.fixture
def conditional_model_file(tmp_path):
    """A tiny model conditional on 3 classes, class 2 the most frequent."""
    from ganmodels.modelfile import save_model

    G, cfg = tiny_generator(c_dim=3)
    G.mapping.c_probs.copy_(torch.tensor([0.2, 0.3, 0.5]))
    return save_model(tmp_path / "cond.safetensors", G, config=cfg, card={"name": "cond"})


def test_conditional_model_samples_the_chosen_class_and_keeps_it_in_the_project(
    make_window, conditional_model_file, tmp_path, monkeypatch
):
    from editor.dialogs import SampleDialog
    from ganmodels.generate import seed_to_class

    window = make_window(model=conditional_model_file)
    model = window.session.model
    window.editor.new_document(16, 16)
    window.editor.generate(5, 1.0)  # the seed's own class
    own = seed_to_class(5, model.G)
    layer = window.doc.active_layer
    assert layer.gan.class_index == own and layer.name == f"Sample 5, class {own}"
    other = (own + 1) % 3
    window.editor.generate(5, 1.0, other)
    chosen = window.doc.active_layer
    assert chosen.gan.class_index == other and chosen.name == f"Sample 5, class {other}"
    expected = to_float01(synthesize(model.G, seeds_to_ws(model.G, [5], classes=[other])))[0]
    np.testing.assert_array_equal(chosen.pixels[..., :3], expected)
    assert not np.array_equal(chosen.pixels, layer.pixels)
    errors = []
    window.editor.error.connect(lambda title, text: errors.append(title))
    assert window.editor.generate(5, 1.0, 3) is None and errors == ["No such class"]

    # Truncation pulls towards the class's mean w (as the mapping does), in the job and on the slider.
    window.editor.generate(5, 0.5, other)
    truncated = window.doc.active_layer
    expected = to_float01(synthesize(model.G, seeds_to_ws(model.G, [5], classes=[other], truncation_psi=0.5)))[0]
    np.testing.assert_array_equal(truncated.pixels[..., :3], expected)
    global_ws = model.G.mapping.w_avg.lerp(seeds_to_ws(model.G, [5], classes=[other]), 0.5)
    assert not np.allclose(expected, to_float01(synthesize(model.G, global_ws))[0], atol=1e-3)
    drag_slider(window.latent_panel.truncation.slider, [30])  # psi 0.3
    expected = to_float01(synthesize(model.G, seeds_to_ws(model.G, [5], classes=[other], truncation_psi=0.3)))[0]
    np.testing.assert_array_equal(window.doc.active_layer.pixels[..., :3], expected)

    # The dialog offers the classes with their share of the training data.
    seen = {}

    def fake_exec(dialog):
        box = dialog.class_box
        seen["items"] = [box.itemText(i) for i in range(box.count())]
        seen["icons"] = [not box.itemIcon(i).isNull() for i in range(box.count())]  # (the sync runner is done)
        box.setCurrentIndex(2)  # class 1
        return True

    monkeypatch.setattr(SampleDialog, "exec", fake_exec)
    window.choose_sample()
    assert seen["items"][0] == "From the seed" and seen["items"][3] == "Class 2 (50.0 % of the training data)"
    assert seen["icons"] == [False, True, True, True]  # each class shows a picture of it
    assert window.doc.active_layer.gan.class_index == 1
    from ganmodels.generate import class_previews

    previews = class_previews(model.G)
    assert previews.shape == (3, 16, 16, 3) and previews.dtype == np.uint8
    assert not np.array_equal(previews[0], previews[1])
    expected = to_float01(synthesize(model.G, seeds_to_ws(model.G, [0], classes=[2], truncation_psi=0.6)))[0]
    # (a batch of 3 maps z a few 1e-7 differently from a batch of 1: allow one level of rounding)
    assert np.abs(previews[2].astype(int) - np.round(expected * 255)).max() <= 1

    path = tmp_path / "c.ora"
    assert window.editor.save_project(path)
    window.editor.new_document(16, 16)
    assert window.editor.open_project(path)
    classes = [la.gan.class_index for la in window.doc.layers if la.kind == "gan"]
    assert classes == [own, other, other, 1]


def test_new_seed_of_a_conditional_sample_follows_how_its_class_was_drawn(make_window, conditional_model_file):
    """The Latent panel's seed gives the picture New Sample gives for that seed: a sample drawn in its seed's own
    class takes the new seed's class; a chosen class is kept. The layer's name follows, in the same undo step."""
    from ganmodels.generate import seed_to_class

    window = make_window(model=conditional_model_file)
    G = window.session.model.G
    window.editor.new_document(16, 16)
    seeds = range(1, 200)
    a = next(s for s in seeds if seed_to_class(s, G) == 2)
    b = next(s for s in seeds if seed_to_class(s, G) == 0)

    def picture(seed, cls, psi=0.7):
        return to_float01(synthesize(G, seeds_to_ws(G, [seed], classes=[cls], truncation_psi=psi)))[0]

    window.editor.generate(a, 0.7)  # "From the seed": class 2
    layer_id = window.doc.active_id
    window.latent_panel.seed.setValue(b)
    layer = window.doc.layer(layer_id)
    assert layer.gan.seed == b and layer.gan.class_index == 0 and layer.name == f"Sample {b}, class 0"
    np.testing.assert_allclose(layer.pixels[..., :3], picture(b, 0), atol=1e-6)
    stack = window.doc.undo_stack
    stack.undo()  # one step: seed, class and name together
    layer = window.doc.layer(layer_id)
    assert layer.gan.seed == a and layer.gan.class_index == 2 and layer.name == f"Sample {a}, class 2"
    np.testing.assert_allclose(layer.pixels[..., :3], picture(a, 2), atol=1e-6)
    stack.redo()
    assert window.doc.layer(layer_id).name == f"Sample {b}, class 0"

    window.editor.generate(a, 0.7, 1)  # class 1 chosen: kept for another seed
    chosen_id = window.doc.active_id
    window.doc.rename_layer(chosen_id, "my pick")
    window.latent_panel.seed.setValue(b)
    layer = window.doc.layer(chosen_id)
    assert layer.gan.seed == b and layer.gan.class_index == 1 and layer.name == "my pick"  # a user's name stays
    np.testing.assert_allclose(layer.pixels[..., :3], picture(b, 1), atol=1e-6)
    assert not np.allclose(picture(b, 1), picture(b, 0), atol=1e-3)


def test_sample_dialog_is_deleted_after_use_and_drops_late_previews(make_window, conditional_model_file, monkeypatch):
    """A cancelled New Sample dialog adds nothing and is deleted (a dialog left parented to the window made the app
    abort at exit), and class previews that arrive after it closed are dropped."""
    import shiboken6

    from editor.dialogs import SampleDialog

    window = make_window(model=conditional_model_file)
    window.editor.new_document(16, 16)
    shown = []
    monkeypatch.setattr(SampleDialog, "exec", lambda dialog: shown.append(dialog) or False)
    before = [la.id for la in window.doc.layers]
    window.choose_sample()
    assert [la.id for la in window.doc.layers] == before
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    (dialog,) = shown
    assert not shiboken6.isValid(dialog) and not window.findChildren(SampleDialog)
    dialog.set_class_previews(np.zeros([3, 16, 16, 3], np.uint8))  # no error


def test_model_panel_wraps_long_values_without_cutting_them_off(make_window, qtbot):
    """In the window's Model dock (default layout) every value of the shipped model's card is shown whole."""
    from ganmodels.resources import default_model_path

    window = make_window()
    window.resize(1400, 880)
    window.show()
    qtbot.waitExposed(window)
    assert window.open_model(default_model_path())  # (as the app does: the card arrives in a laid-out dock)
    panel = window.model_panel
    assert panel.values["File"].text() == str(default_model_path())  # (the break points are for display only)
    for key, label in panel.values.items():
        qtbot.waitUntil(lambda label=label: label.height() >= label.heightForWidth(label.width()) > 0)
        assert label.mapTo(panel, label.rect().topRight()).x() < panel.width(), key
    assert panel.values["Training data"].height() >= 3 * panel.values["Name"].height()  # several lines, all shown


def test_job_rows_fit_a_narrow_panel_with_their_cancel_button_visible(qtbot):
    from PySide6.QtWidgets import QLabel

    from editor.panels.jobs import JobsPanel

    panel = JobsPanel()
    qtbot.addWidget(panel)
    panel.resize(240, 300)
    panel.show()
    title = "Invert + pivotal tuning (encoder + 50 steps, then 200 tuning steps)"
    panel.add_job(1, title)
    panel.add_job(2, "Inpaint")
    viewport = panel.list.viewport()
    for job_id in (1, 2):
        _item, row = panel.rows[job_id]
        qtbot.waitUntil(lambda row=row: row.width() == viewport.width())
        left = row.cancel.mapTo(viewport, row.cancel.rect().topLeft()).x()
        assert 0 <= left and left + row.cancel.width() <= viewport.width() and row.cancel.isVisible()
    _item, row = panel.rows[1]
    shown = QLabel.text(row.title)
    assert row.title.text() == title and row.title.toolTip() == title
    assert shown.endswith("\u2026") and len(shown) < len(title)  # shortened on screen
    assert not panel.list.horizontalScrollBar().isVisible()
    panel.resize(900, 300)
    qtbot.waitUntil(lambda: QLabel.text(row.title) == title)  # room again: the whole title


def test_sample_dialog_of_an_unconditional_model_has_no_class_box(qtbot):
    from editor.dialogs import SampleDialog

    dialog = SampleDialog(4, 0.7, lambda: 9)
    qtbot.addWidget(dialog)
    assert dialog.class_box is None and dialog.near_box is None  # (no anchors either)
    assert dialog.values() == (4, pytest.approx(0.7), None, True)


def test_space_over_the_canvas_pans_even_when_a_panel_has_the_focus(qtbot, make_window):
    window = make_window()
    window.editor.new_document(2000, 1500)
    window.resize(1100, 800)
    window.show()
    qtbot.waitExposed(window)
    canvas, vp = window.canvas, window.canvas.viewport()
    canvas.zoom_100()
    window.layers_panel.list.setFocus()
    qtbot.mouseMove(vp, pos=QPoint(400, 300))  # the pointer is over the picture
    assert canvas.is_hovered()
    qtbot.keyPress(window.layers_panel.list, Qt.Key.Key_Space)  # would toggle the layer's visibility box
    assert canvas.hasFocus() and window.doc.layers[0].visible
    start = canvas.to_document(QPointF(400, 300))
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=QPoint(400, 300))
    qtbot.mouseMove(vp, pos=QPoint(350, 260))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=QPoint(350, 260))
    qtbot.keyRelease(canvas, Qt.Key.Key_Space)
    moved = canvas.to_document(QPointF(400, 300))
    assert moved.x() - start.x() == pytest.approx(50 / canvas.zoom, abs=1)  # the view moved...
    assert window.doc.undo_stack.count() == 0  # ...and nothing was hidden or painted
    window.layers_panel.opacity_spin.setFocus()  # text fields keep their spaces
    qtbot.mouseMove(vp, pos=QPoint(300, 300))
    window.layers_panel.opacity_spin.lineEdit().clear()
    qtbot.keyPress(window.layers_panel.opacity_spin, Qt.Key.Key_Space)
    assert window.layers_panel.opacity_spin.hasFocus()


def test_save_as_of_an_unchanged_document_renames_the_window(make_window, tmp_path):
    window = make_window()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "pic.png")
    assert window.open_image(tmp_path / "pic.png")
    assert window.windowTitle().startswith("pic.png (40 x 30)")
    assert window._save_project_to(tmp_path / "proj.ora")
    assert window.windowTitle().startswith("proj.ora (40 x 30)")


def test_layer_menu_merges_flattens_and_deletes_with_undo(qtbot, make_window):
    window = make_window()
    window.editor.new_document(8, 6)
    doc = window.doc
    red = np.zeros([6, 8, 4], np.float32)
    red[:3, :, 0], red[:3, :, 3] = 1.0, 1.0  # top half opaque red
    doc.add_layer(make_raster_layer(8, 6, name="Red", pixels=red))
    doc.set_opacity(doc.active_id, 0.5)
    blue = np.zeros([6, 8, 4], np.float32)
    blue[:, :4, 2], blue[:, :4, 3] = 1.0, 1.0  # left half opaque blue
    doc.add_layer(make_raster_layer(8, 6, name="Blue", pixels=blue))
    doc.set_mask(doc.active_id, np.ones([6, 8], np.float32), text="Mask")
    shown = doc.flatten()
    count = doc.undo_stack.count()
    assert window.act_merge_down.isEnabled() and not window.act_layer_up.isEnabled()
    window.act_merge_down.trigger()
    assert [la.name for la in doc.layers] == ["Background", "Red"] and doc.active_layer.name == "Red"
    assert doc.active_layer.kind == "raster" and doc.active_layer.opacity == 1.0 and doc.active_layer.mask.all()
    assert np.allclose(doc.flatten(), shown, atol=1e-6)  # the picture did not change
    assert doc.undo_stack.count() == count + 1 and doc.undo_stack.undoText() == "Merge down"
    doc.undo_stack.undo()
    assert [la.name for la in doc.layers] == ["Background", "Red", "Blue"] and doc.layers[1].opacity == 0.5
    doc.set_visible(doc.layers[1].id, False)
    window.act_merge_down.trigger()  # Blue into a hidden layer: refused with a reason
    assert len(doc.layers) == 3 and "Red is hidden" in window.statusBar().currentMessage()
    shown = doc.flatten()
    window.act_flatten.trigger()
    assert [la.name for la in doc.layers] == ["Flattened"]
    assert np.allclose(doc.layers[0].pixels, shown) and shown[0, 0, 2] == 1.0  # what was shown (Red was hidden)
    doc.undo_stack.undo()
    assert len(doc.layers) == 3
    doc.set_active(doc.layers[2].id)
    window.layers_panel.list.setFocus()
    qtbot.keyPress(window.layers_panel.list, Qt.Key.Key_Delete)
    assert [la.name for la in doc.layers] == ["Background", "Red"]
    window.act_layer_new.trigger()
    window.act_layer_duplicate.trigger()
    assert [la.name for la in doc.layers] == ["Background", "Red", "Layer 1", "Layer 1 copy"]
    window.act_layer_down.trigger()
    assert [la.name for la in doc.layers][2:] == ["Layer 1 copy", "Layer 1"]


def test_typed_opacity_is_one_undo_step(qtbot, make_window):
    window = make_window()
    spin = window.layers_panel.opacity_spin
    spin.setFocus()
    spin.selectAll()
    qtbot.keyClicks(spin, "50")
    assert window.doc.layers[0].opacity == 1.0  # nothing happens while typing
    qtbot.keyClick(spin, Qt.Key.Key_Return)
    assert window.doc.layers[0].opacity == 0.5 and window.doc.undo_stack.count() == 1


def test_keyboard_shortcuts_are_listed(make_window, monkeypatch):
    window = make_window()
    shown = []
    monkeypatch.setattr(QMessageBox, "exec", lambda self: shown.append(self.text()) or 0)
    window.show_shortcuts()
    assert "Merge Down" in shown[0] and "Ctrl+M" in shown[0] and "Space + drag" in shown[0]


def test_export_layer_file_name_has_no_path_separators(make_window, monkeypatch, tmp_path):
    from PySide6.QtWidgets import QFileDialog

    window = make_window()
    window.doc.rename_layer(window.doc.active_id, "A / b: c")
    asked = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a: asked.append(a[2]) or ("", ""))
    window.choose_export("layer")
    assert Path(asked[0]).name == "untitled-A _ b_ c.png"


def test_a_direction_file_adds_its_sliders_to_the_loaded_model(make_window, tiny_model_file, tmp_path):
    from ganmodels.directions import Direction, save_directions

    window = make_window()
    v = torch.zeros(32)
    v[1] = 1.0
    sidecar = save_directions(tmp_path / "dirs.safetensors", [Direction("first", v, (0, 2), scale=0.5)])
    assert not window.open_model(sidecar)  # no model yet: says which to open first
    box = next(b for b in window.findChildren(QMessageBox) if b.isVisible())
    assert box.windowTitle() == "Cannot add directions" and "open the model they belong to first" in box.text()
    box.done(0)
    assert window.open_model(tiny_model_file)
    assert window.open_model(sidecar)
    assert list(window.latent_panel.sliders) == ["first", "first (dirs)"]  # the model's own name is kept
    assert window.model_panel.values["Directions"].text() == "2"
    assert window.statusBar().currentMessage() == "Added 1 direction from dirs.safetensors"
    assert not window.open_model(sidecar)  # the same file again adds nothing
    box = next(b for b in window.findChildren(QMessageBox) if b.isVisible())
    assert "loaded already" in box.text()
    box.done(0)
    wrong = save_directions(tmp_path / "other.safetensors", [Direction("x", torch.ones(64), (0, 2))])
    assert not window.open_model(wrong)
    box = next(b for b in window.findChildren(QMessageBox) if b.isVisible())
    assert "shape (64,)" in box.text() and "another model" in box.text()
    assert list(window.latent_panel.sliders) == ["first", "first (dirs)"]


def test_invert_refuses_a_document_with_nothing_visible(make_window, tiny_model_file):
    window = make_window(model=tiny_model_file)
    window.doc.set_visible(window.doc.active_id, False)
    count = window.doc.undo_stack.count()
    assert window.editor.invert_image(steps=2) is None
    box = next(b for b in window.findChildren(QMessageBox) if b.isVisible())
    assert box.windowTitle() == "Nothing to invert" and window.doc.undo_stack.count() == count


def test_slider_keys_in_a_row_are_one_undo_step_and_the_wheel_needs_focus(qtbot, make_window, tiny_model_file):
    from PySide6.QtGui import QWheelEvent

    window, _job = sample_window(make_window, tiny_model_file)
    window.show()
    qtbot.waitExposed(window)
    stack = window.doc.undo_stack
    count = stack.count()
    slider = window.latent_panel.sliders["first"].slider
    window.layers_panel.list.setFocus()
    wheel = QWheelEvent(
        QPointF(5, 5), QPointF(slider.mapToGlobal(QPoint(5, 5))), QPoint(0, 0), QPoint(0, 360),
        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False,
    )  # fmt: skip
    QApplication.sendEvent(slider, wheel)  # scrolling the panel over an unfocused slider
    qtbot.wait(1000)
    assert stack.count() == count and window.doc.active_layer.gan.strengths == {}
    slider.setFocus()
    for _ in range(5):
        qtbot.keyClick(slider, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: stack.count() == count + 1, timeout=5000)
    assert stack.undoText() == "Direction first: +0.05"
    assert window.doc.active_layer.gan.strengths["first"] == pytest.approx(0.05)
    qtbot.keyClick(slider, Qt.Key.Key_Left)
    window.layers_panel.list.setFocus()  # leaving the slider ends its key gesture at once
    assert stack.count() == count + 2 and stack.undoText() == "Direction first: +0.04"


def test_another_programs_ora_opens_with_what_it_loses_named_and_is_not_overwritten(make_window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog
    from test_ora import _foreign_ora

    path = _foreign_ora(tmp_path / "krita.ora")
    before = path.read_bytes()
    window = make_window()
    assert window.open_project(path)
    box = next(b for b in window.findChildren(QMessageBox) if b.isVisible())
    assert "blend modes" in box.text() and "leaves this file as it is" in box.text()
    box.done(0)
    assert not window.doc.layers[-1].visible  # the layer of the hidden group
    asked = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a: asked.append(a[2]) or ("", ""))
    assert not window.save_project()  # Ctrl+S asks for a file instead of overwriting krita.ora
    assert asked == [str(tmp_path / "krita-edited.ora")] and path.read_bytes() == before
    assert window._save_project_to(tmp_path / "mine.ora")
    asked.clear()
    assert window.save_project() and asked == []  # our own file from now on


def test_recent_files_reopen_pictures_and_projects(make_window, tmp_path):
    window = make_window()
    Image.new("RGB", (20, 10), (0, 200, 0)).save(tmp_path / "a.png")
    assert window.open_image(tmp_path / "a.png")
    assert window._save_project_to(tmp_path / "a.ora")
    window.editor.new_document(30, 30)
    window._fill_recent_menu()
    assert [a.text() for a in window.recent_menu.actions()] == ["a.ora", "a.png"]
    window.recent_menu.actions()[0].trigger()
    assert window.doc.size == (20, 10) and window.doc.path == tmp_path / "a.ora"
    (tmp_path / "a.png").unlink()
    assert not window.open_recent(str(tmp_path / "a.png"))  # gone: said so, and dropped from the list
    box = next(b for b in window.findChildren(QMessageBox) if b.isVisible())
    assert "no longer there" in box.text()
    assert window.settings.recent_files() == [str(tmp_path / "a.ora")]


def test_import_says_when_a_picture_was_scaled_down(make_window, tmp_path):
    window = make_window()
    window.editor.new_document(100, 50)
    Image.new("RGB", (400, 100), (0, 0, 200)).save(tmp_path / "wide.png")
    assert window.editor.import_image(tmp_path / "wide.png")
    assert window.statusBar().currentMessage() == (
        "Imported wide.png scaled down to 100 x 25 (25%) to fit the 100 x 50 picture"
    )


def test_copy_layer_copy_merged_and_paste_as_a_new_layer(make_window, tmp_path):
    from PySide6.QtCore import QMimeData, QUrl

    window = make_window()
    window.editor.new_document(30, 30)
    doc = window.doc
    rng = np.random.default_rng(0)
    top = rng.integers(0, 256, [30, 30, 4]).astype(np.float32) / 255
    doc.add_layer(make_raster_layer(30, 30, name="top", pixels=top))
    doc.set_opacity(doc.active_id, 0.5)
    clipboard = QApplication.clipboard()

    window.act_copy.trigger()  # the selected layer, as it is (its opacity is the document's business)
    np.testing.assert_array_equal(qimage_to_rgba(clipboard.image()), top)
    assert window.statusBar().currentMessage() == "Copied the layer top (30 x 30)"
    window.act_copy_merged.trigger()  # what is shown
    np.testing.assert_allclose(qimage_to_rgba(clipboard.image()), doc.flatten(), atol=0.5 / 255 + 1e-6)

    window.act_copy.trigger()
    n = len(doc.layers)
    window.act_paste.trigger()  # copy + paste: the same pixels on a new layer, on top, one undo step
    assert len(doc.layers) == n + 1 and doc.active_layer.name == "Pasted"
    np.testing.assert_array_equal(doc.active_layer.pixels, top)
    assert window.statusBar().currentMessage() == "Pasted a 30 x 30 picture as a layer"
    doc.undo_stack.undo()
    assert len(doc.layers) == n

    wide = np.zeros([20, 60, 4], np.float32)
    wide[..., 2] = wide[..., 3] = 1.0  # opaque blue, larger than the document: scaled down, centred
    clipboard.setImage(rgba_to_qimage(wide))
    assert window.paste()
    pasted = doc.active_layer.pixels
    assert window.statusBar().currentMessage() == (
        "Pasted a 60 x 20 picture scaled down to 30 x 10 (50%) to fit the 30 x 30 picture"
    )
    assert (pasted[10:20, :, 3] > 0.99).all() and not pasted[:10, :, 3].any() and not pasted[20:, :, 3].any()
    np.testing.assert_allclose(pasted[12:18, 2:28, :3], np.broadcast_to([0, 0, 1], [6, 26, 3]), atol=1 / 255)

    # Copied files (a file manager's Copy): the pictures among them are imported; anything else says why not.
    Image.new("RGB", (10, 10), (200, 0, 0)).save(tmp_path / "red.png")
    (tmp_path / "notes.txt").write_text("no picture")
    files = QMimeData()
    files.setUrls([QUrl.fromLocalFile(str(tmp_path / "notes.txt")), QUrl.fromLocalFile(str(tmp_path / "red.png"))])
    n = len(doc.layers)
    assert window.paste_from(files)
    assert len(doc.layers) == n + 1 and doc.active_layer.name == "red"
    text = QMimeData()
    text.setText("just words")
    assert not window.paste_from(text) and len(doc.layers) == n + 1
    assert window.statusBar().currentMessage() == "Nothing to paste: the clipboard holds no picture"


def test_the_window_fits_a_small_screen_with_a_model_loaded(qtbot, make_window, tiny_model_file):
    window = make_window(model=tiny_model_file)
    window.show()
    qtbot.waitExposed(window)
    assert window.minimumSizeHint().height() <= 600  # the Model and Latent panels scroll instead
    window.resize(800, 600)
    qtbot.waitUntil(lambda: window.height() == 600)
    assert window.canvas.height() > 200


def test_mask_colour_is_chosen_and_remembered(make_window, monkeypatch, tmp_path):
    from PySide6.QtGui import QColor
    from PySide6.QtWidgets import QColorDialog

    window = make_window()
    window.editor.new_document(8, 8)
    mask = np.zeros([8, 8], np.float32)
    mask[2, 3] = 1.0
    window.doc.set_mask(window.doc.active_id, mask)
    monkeypatch.setattr(QColorDialog, "getColor", lambda *a: QColor(0, 200, 255))
    window.act_mask_color.trigger()
    overlay = window.canvas.mask_item.image.convertToFormat(QImage.Format.Format_RGBA8888)
    pixel = overlay.pixelColor(3, 2)
    shown = np.array([pixel.red(), pixel.green(), pixel.blue()])  # (50 % premultiplied: rounding)
    assert np.abs(shown - [0, 200, 255]).max() <= 2 and overlay.pixelColor(0, 0).alpha() == 0
    assert window.settings.mask_color == (0, 200, 255)
    again = make_window()  # the next start uses it
    assert again.canvas_controller.mask_tint == (0, 200, 255)


def test_a_slider_key_press_is_saved_even_right_away(make_window, tiny_model_file, tmp_path):
    window, _job = sample_window(make_window, tiny_model_file)
    slider = window.latent_panel.sliders["first"].slider
    slider.setFocus()
    slider.setValue(slider.value() + 30)  # as a key press would (no drag): the gesture waits for more keys
    assert window.doc.active_layer.gan.strengths == {}  # not recorded yet
    assert window._save_project_to(tmp_path / "p.ora")  # Ctrl+S at once
    from editor.project import load_project

    saved = load_project(tmp_path / "p.ora", model_key="", model_name="tiny", model_path=None)
    assert saved.layers[-1].gan.strengths == {"first": pytest.approx(0.3)}
    assert window.doc.undo_stack.isClean()


def test_effective_ws_mixes_the_chosen_rows_before_the_directions():
    from editor.latent import LatentMix, effective_ws, mix_rows
    from ganmodels.directions import Direction

    rng = np.random.default_rng(0)
    base, other = rng.standard_normal([10, 8]).astype(np.float32), rng.standard_normal([10, 8]).astype(np.float32)
    centre = torch.zeros(8)
    assert mix_rows("coarse", 10) == (0, 4) and mix_rows("middle", 10) == (4, 8) and mix_rows("fine", 10) == (8, 10)
    assert mix_rows("fine", 6) == (0, 0) and mix_rows("all", 6) == (0, 6)  # a small generator has no fine rows
    coarse = LatentMix(other, source="B", part="coarse", amount=1.0)
    out = effective_ws(base, centre=centre, truncation=1.0, directions={}, strengths={}, mix=coarse)
    np.testing.assert_array_equal(out[:4], other[:4])
    np.testing.assert_array_equal(out[4:], base[4:])
    half = dataclasses.replace(coarse, part="all", amount=0.5)
    d = Direction("d", torch.ones(8) / np.sqrt(8), (0, 10))
    out = effective_ws(base, centre=centre, truncation=0.5, directions={"d": d}, strengths={"d": 2.0}, mix=half)
    expected = 0.5 * (0.5 * base) + 0.5 * other + 2.0 / np.sqrt(8)  # truncated, mixed, then moved
    np.testing.assert_allclose(out, expected, atol=1e-6)
    with pytest.raises(ValueError, match="mixed-in latent"):
        effective_ws(base[:6], centre=centre, truncation=1.0, directions={}, strengths={}, mix=half)


def test_mixing_in_another_gan_layer_is_undoable_and_saved(make_window, tiny_model_file, tmp_path):
    window, _ = sample_window(make_window, tiny_model_file, seed=3)
    first = window.doc.active_layer
    window.editor.generate(8, 0.7)
    second = window.doc.active_layer
    panel, doc = window.latent_panel, window.doc
    assert second.id != first.id and not panel.mix_amount.isEnabled()
    box = panel.mix_source
    assert [box.itemText(i) for i in range(box.count())] == ["Nothing", first.name]
    pixels0, count0 = second.pixels.copy(), doc.undo_stack.count()

    box.setCurrentIndex(1)
    box.activated.emit(1)  # as a choice in the box does: half way to the other sample, every row
    state = doc.layer(second.id).gan
    assert state.mix is not None and (state.mix.part, state.mix.amount) == ("all", 0.5)
    assert doc.undo_stack.count() == count0 + 1 and doc.undo_stack.undoText() == f"Mix with {first.name}"
    assert panel.mix_amount.isEnabled() and box.currentData() == first.id

    drag_slider(panel.mix_amount.slider, [70, 90, 100])  # all the way: the other sample's picture
    assert doc.undo_stack.count() == count0 + 2 and doc.layer(second.id).gan.mix.amount == pytest.approx(1.0)
    np.testing.assert_allclose(doc.layer(second.id).pixels, doc.layer(first.id).pixels, atol=1e-5)
    part = panel.mix_part
    part.setCurrentIndex(part.findData("coarse"))
    part.activated.emit(part.currentIndex())  # only the coarse rows (pose, shape): a picture between the two
    assert doc.layer(second.id).gan.mix.part == "coarse" and doc.undo_stack.count() == count0 + 3
    assert doc.undo_stack.undoText() == "Mix part: Coarse"
    mixed = doc.layer(second.id).pixels.copy()
    assert not np.allclose(mixed, doc.layer(first.id).pixels, atol=1e-3) and not np.allclose(mixed, pixels0, atol=1e-3)

    # Saved with the project (the other layer's latent travels with it) and in the PNG metadata.
    path = tmp_path / "mix.ora"
    assert window.editor.save_project(path)
    doc.delete_layer(first.id)  # the mix keeps the latent it took
    assert panel.mix_source.currentText() == f"{first.name} (as it was)"
    assert window.editor.open_project(path)
    reopened = next(la for la in window.doc.layers if la.name == second.name)
    assert reopened.gan.mix.same(doc.layer(reopened.id).gan.mix) and reopened.gan.mix.part == "coarse"
    source = next(la for la in window.doc.layers if la.name == first.name)
    assert reopened.gan.mix.source_id == source.id  # (new ids on opening: the mix follows its source's)
    window.doc.set_active(reopened.id)
    assert panel.mix_source.currentData() == source.id  # the source itself, not "(as it was)"
    window.doc.rename_layer(source.id, "Renamed")  # another layer's change shows in the box at once
    assert panel.mix_source.currentText() == "Renamed"
    np.testing.assert_allclose(reopened.pixels, mixed, atol=1 / 255)
    meta = layer_metadata(reopened)
    np.testing.assert_array_equal(decode_ws(meta["gan"]["mix"]["ws"]), reopened.gan.mix.ws)

    # Undo takes every step back; choosing Nothing removes a mix in one step.
    window.doc.set_active(reopened.id)
    box = panel.mix_source
    box.setCurrentIndex(0)
    box.activated.emit(0)
    assert window.doc.layer(reopened.id).gan.mix is None and window.doc.undo_stack.undoText() == "Mix off"
    box.setCurrentIndex(box.findData(source.id))
    box.activated.emit(box.currentIndex())  # on again: the part and amount it had
    assert (window.doc.layer(reopened.id).gan.mix.part, window.doc.layer(reopened.id).gan.mix.amount) == ("coarse", 1.0)
    window.doc.undo_stack.undo()
    window.doc.undo_stack.undo()
    assert window.doc.layer(reopened.id).gan.mix is not None


def test_the_wheel_over_an_unfocused_blend_box_scrolls_instead_of_changing_the_mode(qtbot, make_window):
    window = make_window()
    window.show()
    qtbot.waitExposed(window)
    box, stack = window.layers_panel.blend, window.doc.undo_stack
    count = stack.count()

    def wheel() -> None:
        event = QWheelEvent(
            QPointF(5, 5), QPointF(box.mapToGlobal(QPoint(5, 5))), QPoint(0, 0), QPoint(0, -120),
            Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False,
        )  # fmt: skip
        QApplication.sendEvent(box, event)

    window.layers_panel.list.setFocus()
    wheel()
    assert stack.count() == count and window.doc.layers[0].blend == "normal"
    window.activateWindow()
    box.setFocus()
    qtbot.waitUntil(box.hasFocus, timeout=2000)
    wheel()  # focused: the wheel picks the next mode, as a choice does
    assert window.doc.layers[0].blend == "multiply" and stack.count() == count + 1


def test_a_merge_that_would_change_the_picture_is_explained_in_a_box(make_window):
    window = make_window()
    doc = window.doc
    lower = make_raster_layer(*doc.size, name="shade", fill=(0.5, 0.5, 0.5, 1.0))
    doc.add_layer(lower)
    doc.set_blend(lower.id, "multiply")
    doc.set_pixels(doc.layers[0].id, np.full([*doc.size[::-1], 4], [0.2, 0.6, 0.9, 1.0], np.float32))
    doc.add_layer(make_raster_layer(*doc.size, name="paint", fill=(1.0, 1.0, 0.0, 1.0)))
    count = doc.undo_stack.count()
    window.act_merge_down.trigger()
    box = window.findChild(QMessageBox, "error-box")
    assert box is not None and box.windowTitle() == "Cannot merge these layers"
    assert "shade (Multiply)" in box.text() and "Layer > Flatten Image keeps the picture" in box.text()
    assert doc.undo_stack.count() == count and len(doc.layers) == 3
    box.close()


def test_blend_modes_tried_in_a_row_are_one_undo_step(qtbot, make_window):
    window = make_window()
    box, stack = window.layers_panel.blend, window.doc.undo_stack
    count = stack.count()
    for mode in ("multiply", "screen", "overlay"):  # as Down, Down, Down in the box
        box.setCurrentIndex(box.findData(mode))
        box.activated.emit(box.currentIndex())
    assert stack.count() == count + 1 and stack.undoText() == "Blend mode Overlay"
    assert window.doc.layers[0].blend == "overlay"
    qtbot.wait(1000)  # a pause ends the run
    box.setCurrentIndex(box.findData("darken"))
    box.activated.emit(box.currentIndex())
    assert stack.count() == count + 2
    stack.undo()
    assert window.doc.layers[0].blend == "overlay"
    stack.undo()
    assert window.doc.layers[0].blend == "normal" and box.currentData() == "normal"


def test_pivotal_tuning_dialog_explains_remembers_its_steps_and_cancels(make_window, tiny_model_file, monkeypatch):
    from editor.dialogs import PivotalTuningDialog

    window = make_window(model=tiny_model_file)
    window.editor.new_document(16, 16)
    asked, shown = [], []
    monkeypatch.setattr(window.editor, "invert_image", lambda **kw: asked.append(kw))

    def answer(steps):
        def exec_(dialog):
            shown.append((dialog.steps.value(), dialog.about.text()))
            if steps is None:
                return False  # Cancel
            dialog.steps.setValue(steps)
            return True

        return exec_

    monkeypatch.setattr(PivotalTuningDialog, "exec", answer(None))
    window.choose_pti_invert()
    assert asked == [] and shown[-1][0] == 100 and "mask" not in shown[-1][1]  # the default; cancelled: nothing
    monkeypatch.setattr(PivotalTuningDialog, "exec", answer(40))
    window.choose_pti_invert()
    assert asked == [{"pti_steps": 40}] and window.settings.pti_steps(100) == 40
    mask = np.zeros((16, 16), np.float32)
    mask[4:8, 4:8] = 1
    window.doc.set_mask(window.doc.active_id, mask)
    window.choose_pti_invert()  # opens with the last choice and says the masked part is left out
    assert shown[-1][0] == 40 and "masked part is left out" in shown[-1][1]
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert asked[-1] == {"pti_steps": 40} and not window.findChildren(PivotalTuningDialog)  # each one deleted
    window.settings.q.setValue("invert/pti_steps", "lots")  # a damaged setting falls back to the default
    assert window.settings.pti_steps(100) == 100


@pytest.fixture
def anchored_model_file(tmp_path):
    """A tiny model conditional on 2 classes with 6 anchors (3 of each class) far from its class means."""
    from ganmodels.anchors import AnchorBank
    from ganmodels.components import resave_with
    from ganmodels.modelfile import load_model, save_model

    G, cfg = tiny_generator(c_dim=2)
    plain = load_model(save_model(tmp_path / "plain.safetensors", G, config=cfg, card={"name": "anchored"}))
    bank = AnchorBank.start(G, [0, 1, 0, 1, 1, 0], rows=2)
    bank.ws += 1.5 * torch.randn(bank.ws.shape, generator=torch.Generator().manual_seed(4))
    bank.fitted[:] = True
    return resave_with(plain, tmp_path / "anchored.safetensors", add={"anchors": bank.to_component()})


def test_samples_of_a_model_with_anchors_are_drawn_around_them(make_window, anchored_model_file, tmp_path, monkeypatch):
    """New Sample draws around the anchor its seed picks (as ``ganmodels sample``), at the anchors' default
    truncation; the truncation slider pulls towards that anchor; a new seed picks its own anchor; the project
    keeps the anchor. The dialog can draw a plain sample instead."""
    from editor.dialogs import SampleDialog
    from ganmodels.anchors import DEFAULT_PSI, anchored_ws, pick_anchor
    from ganmodels.generate import seed_to_class

    window = make_window(model=anchored_model_file)
    model = window.session.model
    bank = model.anchors
    assert bank is not None and len(bank) == 6
    window.editor.new_document(16, 16)
    window.random_sample()
    layer = window.doc.active_layer
    seed = layer.gan.seed
    assert layer.gan.truncation == pytest.approx(DEFAULT_PSI)
    assert layer.gan.anchor == pick_anchor(seed, model.G, bank)
    assert layer.gan.class_index == int(bank.labels[layer.gan.anchor])
    assert f"near training picture {layer.gan.anchor}" in window.latent_panel.title.text()
    assert window.session.card_info()["Samples"] == "around 6 training pictures"  # (no fit: no PSNR to show)
    model.card["anchors"] = {"mean_psnr_db": 23.87}  # (what `ganmodels anchors` measures on the stored anchors)
    assert window.session.card_info()["Samples"] == "around 6 training pictures (23.9 dB)"

    def picture(seed, psi, anchor=None):
        return to_float01(
            synthesize(model.G, anchored_ws(model.G, bank, [seed], truncation_psi=psi, anchors=anchor)[0])
        )[0]

    np.testing.assert_allclose(layer.pixels[..., :3], picture(seed, DEFAULT_PSI), atol=1e-6)
    layer_id = layer.id
    drag_slider(window.latent_panel.truncation.slider, [50])  # psi 0.5, towards the same anchor
    np.testing.assert_allclose(window.doc.layer(layer_id).pixels[..., :3], picture(seed, 0.5), atol=1e-5)
    plain = to_float01(
        synthesize(model.G, seeds_to_ws(model.G, [seed], classes=[layer.gan.class_index], truncation_psi=0.5))
    )[0]
    assert not np.allclose(plain, picture(seed, 0.5), atol=1e-3)
    other = next(s for s in range(1, 100) if pick_anchor(s, model.G, bank) != layer.gan.anchor)
    window.latent_panel.seed.setValue(other)
    moved = window.doc.layer(layer_id)
    assert moved.gan.seed == other and moved.gan.anchor == pick_anchor(other, model.G, bank)
    np.testing.assert_allclose(moved.pixels[..., :3], picture(other, 0.5), atol=1e-5)
    window.doc.undo_stack.undo()
    assert window.doc.layer(layer_id).gan.anchor == layer.gan.anchor

    window.editor.generate(7, 0.0, 1)  # class 1 chosen: one of that class's anchors, its own picture at psi 0
    chosen = window.doc.active_layer
    assert chosen.gan.anchor in (1, 3, 4) and chosen.gan.class_index == 1
    np.testing.assert_allclose(chosen.pixels[..., :3], picture(7, 0.0, [chosen.gan.anchor]), atol=1e-6)

    path = tmp_path / "a.ora"
    assert window.editor.save_project(path)
    window.editor.new_document(16, 16)
    assert window.editor.open_project(path)
    assert [la.gan.anchor for la in window.doc.layers if la.kind == "gan"] == [layer.gan.anchor, chosen.gan.anchor]

    # New Sample: "near a training picture" by default; unticked, a plain sample at the plain default truncation
    seen = {}

    def untick(dialog):
        seen["text"], seen["on"] = dialog.near_box.text(), dialog.near_box.isChecked()
        seen["psi"] = dialog.truncation.value()
        dialog.seed.setValue(11)
        dialog.near_box.setChecked(False)
        seen["plain psi"] = dialog.truncation.value()
        return True

    monkeypatch.setattr(SampleDialog, "exec", untick)
    window.choose_sample()
    assert seen == {"text": "Near one of 6 training pictures", "on": True, "psi": pytest.approx(0.0), "plain psi": 0.7}
    plain = window.doc.active_layer
    cls = seed_to_class(11, model.G)
    assert plain.gan.anchor is None and plain.gan.truncation == pytest.approx(0.7) and plain.gan.class_index == cls
    expected = to_float01(synthesize(model.G, seeds_to_ws(model.G, [11], classes=[cls], truncation_psi=0.7)))[0]
    np.testing.assert_allclose(plain.pixels[..., :3], expected, atol=1e-6)
    assert "near training picture" not in window.latent_panel.title.text()

    def keep(dialog):  # the next one is drawn the way the active sample was
        seen["again"] = dialog.near_box.isChecked(), dialog.truncation.value()
        dialog.near_box.setChecked(True)
        seen["near psi"] = dialog.truncation.value()
        return False

    monkeypatch.setattr(SampleDialog, "exec", keep)
    window.choose_sample()
    assert seen["again"] == (False, pytest.approx(0.7)) and seen["near psi"] == pytest.approx(DEFAULT_PSI)
