"""The editor's document model: layers, masks, undo, compositing (no widgets)."""

from __future__ import annotations

import numpy as np
import pytest

from editor.document import Document, make_gan_layer, make_raster_layer, scale_layers
from editor.latent import GanState
from editor.raster import Dab, Rect, StrokeSpacer, composite, dab_alpha, stamp_dabs, to_display
from ganmodels.blending import BLEND_MODES

W, H = 64, 48


@pytest.fixture
def doc(qapp):
    d = Document(W, H)
    d.add_layer(make_raster_layer(W, H, name="Background", fill=(1, 1, 1, 1)))
    d.undo_stack.clear()
    return d


def stroke(doc: Document, points, *, radius=4.0, hardness=0.5, erase=False) -> None:
    """Paint one stroke through the document API, as the canvas controller does."""
    layer_id = doc.active_id
    token = object()
    spacer = StrokeSpacer(radius=radius)
    doc.paint_mask(layer_id, spacer.begin(*points[0]), radius=radius, hardness=hardness, erase=erase, stroke=token)
    for p in points[1:]:
        doc.paint_mask(layer_id, spacer.move_to(*p), radius=radius, hardness=hardness, erase=erase, stroke=token)


def distance_to_segment(x0, y0, x1, y1):
    """Distance of every pixel centre to the segment (x0, y0)-(x1, y1): [H, W]."""
    ys, xs = np.mgrid[0:H, 0:W] + 0.5
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((xs - x0) * dx + (ys - y0) * dy) / (dx * dx + dy * dy), 0, 1)
    return np.hypot(xs - (x0 + t * dx), ys - (y0 + t * dy))


def test_stroke_sets_mask_only_near_the_path_and_undo_redo_are_exact(doc):
    layer = doc.active_layer
    before = layer.mask.copy()
    stroke(doc, [(10, 10), (30, 20), (50, 20)], radius=4.0, hardness=0.5)
    mask = layer.mask.copy()
    d = np.minimum(distance_to_segment(10, 10, 30, 20), distance_to_segment(30, 20, 50, 20))
    assert mask[d <= 1.0].min() > 0.99  # the centre line is fully painted
    assert mask[d >= 4.0].max() == 0.0  # nothing beyond the brush radius
    assert doc.undo_stack.count() == 1  # one stroke = one undo step
    doc.undo_stack.undo()
    np.testing.assert_array_equal(layer.mask, before)
    doc.undo_stack.redo()
    np.testing.assert_array_equal(layer.mask, mask)


def test_two_strokes_are_two_undo_steps_and_erase_removes(doc):
    layer = doc.active_layer
    stroke(doc, [(10, 10), (40, 10)])
    first = layer.mask.copy()
    stroke(doc, [(10, 30), (40, 30)])
    assert doc.undo_stack.count() == 2
    stroke(doc, [(5, 10), (45, 10)], radius=6.0, hardness=1.0, erase=True)
    assert layer.mask[8:13, 10:41].max() == 0.0
    assert layer.mask[28:33, 12:38].min() > 0.5  # the other stroke is untouched
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    np.testing.assert_array_equal(layer.mask, first)


def test_hard_brush_covers_its_disc():
    mask = np.zeros([32, 32], np.float32)
    rect = stamp_dabs(mask, [Dab(16, 16)], radius=8, hardness=1.0)
    assert rect == Rect(8, 8, 16, 16)
    ys, xs = np.mgrid[0:32, 0:32] + 0.5
    r = np.hypot(xs - 16, ys - 16)
    assert mask[r <= 7.0].min() == 1.0 and mask[r >= 8.0].max() == 0.0
    soft = dab_alpha(np.array([0.0, 2.0, 4.0, 6.0]), np.zeros(4), radius=8, hardness=0.0)
    assert np.all(np.diff(soft) < 0)  # a soft brush falls off from the centre


def test_stroke_spacing_is_even_whatever_the_event_rate():
    a, b = StrokeSpacer(radius=10, spacing=0.2), StrokeSpacer(radius=10, spacing=0.2)
    coarse = a.begin(0, 0) + a.move_to(100, 0)
    fine = b.begin(0, 0)
    for x in range(1, 101):
        fine += b.move_to(x, 0)
    xs = [d.x for d in fine]
    np.testing.assert_allclose(np.diff(xs), 2.0, atol=1e-9)
    np.testing.assert_allclose(xs, [d.x for d in coarse], atol=1e-9)


def test_clear_and_invert_mask_undo(doc):
    layer = doc.active_layer
    stroke(doc, [(20, 20), (30, 25)])
    painted = layer.mask.copy()
    doc.invert_mask(layer.id)
    np.testing.assert_allclose(layer.mask, 1 - painted)
    doc.clear_mask(layer.id)
    assert not layer.mask.any()
    doc.undo_stack.undo()
    np.testing.assert_allclose(layer.mask, 1 - painted)
    doc.undo_stack.undo()
    np.testing.assert_array_equal(layer.mask, painted)


def _snapshot(doc: Document):
    return [(layer.id, layer.name, layer.visible, layer.opacity, layer.blend) for layer in doc.layers], doc.active_id


@pytest.mark.parametrize(
    "edit",
    ["add", "delete", "duplicate", "move", "rename", "visibility", "opacity", "blend"],
)
def test_layer_edits_are_undoable(doc, edit):
    top = make_raster_layer(W, H, name="Top", fill=(1, 0, 0, 0.5))
    doc.add_layer(top)
    doc.undo_stack.clear()
    before = _snapshot(doc)
    bottom_id = doc.layers[0].id
    if edit == "add":
        doc.add_layer(make_raster_layer(W, H, name="New"))
        assert [la.name for la in doc.layers] == ["Background", "Top", "New"]
    elif edit == "delete":
        doc.delete_layer(top.id)
        assert [la.name for la in doc.layers] == ["Background"] and doc.active_id == bottom_id
    elif edit == "duplicate":
        dup = doc.duplicate_layer(top.id)
        assert [la.name for la in doc.layers] == ["Background", "Top", "Top copy"]
        assert dup.id != top.id and np.array_equal(dup.pixels, top.pixels) and dup.pixels is not top.pixels
    elif edit == "move":
        doc.move_layer(top.id, 0)
        assert [la.name for la in doc.layers] == ["Top", "Background"]
    elif edit == "rename":
        doc.rename_layer(top.id, "Renamed")
        assert doc.layer(top.id).name == "Renamed"
    elif edit == "visibility":
        doc.set_visible(top.id, False)
        assert not doc.layer(top.id).visible
        np.testing.assert_allclose(doc.flatten(), 1.0)  # only the white background shows
    elif edit == "opacity":
        doc.set_opacity(top.id, 0.25)
        assert doc.layer(top.id).opacity == 0.25
    elif edit == "blend":
        doc.set_blend(top.id, "multiply")
        assert doc.layer(top.id).blend == "multiply"
        assert doc.undo_stack.undoText() == "Blend mode Multiply"
    assert _snapshot(doc) != before
    after = _snapshot(doc)
    assert doc.undo_stack.count() == 1
    doc.undo_stack.undo()
    assert _snapshot(doc) == before
    doc.undo_stack.redo()
    assert _snapshot(doc) == after


def test_opacity_drag_merges_into_one_step(doc):
    layer_id = doc.active_id
    gesture = object()
    for v in (0.9, 0.7, 0.5, 0.3):
        doc.set_opacity(layer_id, v, gesture=gesture)
    doc.set_opacity(layer_id, 0.2)  # a separate change
    assert doc.undo_stack.count() == 2
    doc.undo_stack.undo()
    assert doc.layer(layer_id).opacity == 0.3
    doc.undo_stack.undo()
    assert doc.layer(layer_id).opacity == 1.0


def test_flatten_is_straight_alpha_over_with_opacity(doc):
    red = np.zeros([H, W, 4], np.float32)
    red[..., 0], red[..., 3] = 1.0, 0.5
    layer = make_raster_layer(W, H, name="red", pixels=red)
    doc.add_layer(layer)
    doc.set_opacity(layer.id, 0.5)
    out = doc.flatten()
    # alpha 0.25 of red over opaque white: rgb = 0.25 * red + 0.75 * white
    np.testing.assert_allclose(out[0, 0], [1.0, 0.75, 0.75, 1.0], atol=1e-6)
    # two translucent layers on transparency: a = 1 - (1 - 0.5)(1 - 0.5), colour weighted by contribution
    blue = np.zeros([2, 2, 4], np.float32)
    blue[..., 2], blue[..., 3] = 1.0, 0.5
    top = composite([(red[:2, :2], 1.0), (blue, 1.0)], 2, 2)
    np.testing.assert_allclose(top[0, 0], [0.25 / 0.75, 0, 0.5 / 0.75, 0.75], atol=1e-6)


def _rgba(color, alpha=1.0, size=(W, H)):
    px = np.zeros([size[1], size[0], 4], np.float32)
    px[..., :3], px[..., 3] = color, alpha
    return px


@pytest.mark.parametrize(
    ("mode", "expected"),
    [  # top (0.5, 0.25, 1.0) over an opaque backdrop (0.8, 0.4, 0.2), by the W3C formulas worked by hand
        ("normal", [0.5, 0.25, 1.0]),
        ("multiply", [0.4, 0.1, 0.2]),
        ("screen", [0.9, 0.55, 1.0]),
        ("overlay", [0.8, 0.2, 0.4]),  # hard-light with the roles swapped: screen above 0.5, multiply below
        ("darken", [0.5, 0.25, 0.2]),
        ("lighten", [0.8, 0.4, 1.0]),
        ("color-dodge", [1.0, 0.4 / 0.75, 1.0]),
        ("color-burn", [0.6, 0.0, 0.2]),
        ("hard-light", [0.8, 0.2, 1.0]),
        ("soft-light", [0.8, 0.28, 0.448]),  # blue: Cb <= 1/4, so D(Cb) = ((16 Cb - 12) Cb + 4) Cb
        ("difference", [0.3, 0.15, 0.8]),
        ("exclusion", [0.5, 0.45, 0.8]),
    ],
)
def test_blend_modes_mix_with_the_layers_below(doc, mode, expected):
    doc.add_layer(make_raster_layer(W, H, name="backdrop", pixels=_rgba((0.8, 0.4, 0.2))))
    top = make_raster_layer(W, H, name="top", pixels=_rgba((0.5, 0.25, 1.0)))
    doc.add_layer(top)
    doc.set_blend(top.id, mode)
    np.testing.assert_allclose(doc.flatten()[0, 0], [*expected, 1.0], atol=1e-6)
    # At half opacity the mixed colour is composited over the backdrop with source-over.
    doc.set_opacity(top.id, 0.5)
    np.testing.assert_allclose(doc.flatten()[0, 0, :3], 0.5 * np.array(expected) + 0.5 * np.array([0.8, 0.4, 0.2]),
                               atol=1e-6)  # fmt: skip


def test_a_blend_mode_over_transparency_shows_the_layer_as_normal():
    half = _rgba((0.9, 0.1, 0.1), 0.5, size=(2, 1))
    half[0, 1, 3] = 0.0  # right: nothing below
    top = _rgba((0.2, 0.6, 0.4), 1.0, size=(2, 1))
    out = composite([(half, 1.0), (top, 1.0, "multiply")], 2, 1)
    np.testing.assert_allclose(out[0, 1], [0.2, 0.6, 0.4, 1.0], atol=1e-6)  # as Normal where nothing is below
    # left: Cs' = (1 - ab) Cs + ab (Cb Cs) with ab = 0.5, then over the half-transparent backdrop
    mixed = 0.5 * np.array([0.2, 0.6, 0.4]) + 0.5 * np.array([0.9, 0.1, 0.1]) * [0.2, 0.6, 0.4]
    np.testing.assert_allclose(out[0, 0], [*mixed, 1.0], atol=1e-6)
    with pytest.raises(ValueError, match="unknown blend mode"):
        composite([(half, 1.0), (top, 1.0, "hue")], 2, 1)


def test_merge_down_bakes_the_upper_blend_mode_and_keeps_the_lower_one(doc):
    lower = make_raster_layer(W, H, name="lower", pixels=_rgba((0.8, 0.4, 0.2)))
    doc.add_layer(lower)
    doc.set_blend(lower.id, "multiply")
    upper = make_raster_layer(W, H, name="upper", pixels=_rgba((0.5, 0.25, 1.0)))
    doc.add_layer(upper)
    doc.set_blend(upper.id, "multiply")
    before = doc.flatten()
    merged = doc.merge_down(upper.id)
    assert merged.blend == "multiply"
    np.testing.assert_allclose(merged.pixels[0, 0], [0.4, 0.1, 0.2, 1.0], atol=1e-6)  # multiply, baked in
    # multiplying is associative: the merged layer shows over the white background as both did
    np.testing.assert_allclose(doc.flatten(), before, atol=1e-6)
    doc.undo_stack.undo()
    assert [(la.name, la.blend) for la in doc.layers] == [("Background", "normal"), ("lower", "multiply"),
                                                          ("upper", "multiply")]  # fmt: skip
    # Over a coloured background, a Multiply layer under a Normal one cannot become one layer: refused, unchanged.
    doc.set_pixels(doc.layers[0].id, _rgba((0.2, 0.6, 0.9)))
    doc.set_blend(upper.id, "normal")
    count, before = doc.undo_stack.count(), doc.flatten()
    with pytest.raises(ValueError, match=r"would change the picture: lower \(Multiply\)"):
        doc.merge_down(upper.id)
    assert doc.undo_stack.count() == count and np.array_equal(doc.flatten(), before)
    # A half-transparent Normal layer under a Screen one does not merge either (the Screen mixes with the backdrop).
    doc.set_blend(lower.id, "normal")
    doc.set_blend(upper.id, "screen")
    doc.set_opacity(lower.id, 0.5)
    with pytest.raises(ValueError, match=r"upper \(Screen\)"):
        doc.merge_down(upper.id)
    # Over an opaque Normal layer any mode merges exactly.
    doc.set_opacity(lower.id, 1.0)
    before = doc.flatten()
    assert doc.merge_down(upper.id).blend == "normal"
    np.testing.assert_allclose(doc.flatten(), before, atol=1e-6)


def test_set_latent_preview_then_commit_is_one_undo_step(doc):
    state = GanState("m#1", None, "m", np.zeros([4, 8]), Rect(0, 0, W, W), seed=1)
    pixels0 = np.zeros([H, W, 4], np.float32)
    layer = make_gan_layer(pixels0, state, name="gan")
    doc.add_layer(layer)
    doc.undo_stack.clear()
    before = (layer.gan, layer.pixels)
    for v in (0.2, 0.4, 0.6):  # previews while dragging: not recorded
        doc.preview_pixels(layer.id, np.full([H, W, 4], v, np.float32))
    assert doc.undo_stack.count() == 0
    final = state.with_strength("smile", 1.5)
    doc.set_latent(layer.id, final, np.full([H, W, 4], 0.6, np.float32), before=before)
    assert doc.undo_stack.count() == 1
    doc.undo_stack.undo()
    assert doc.layer(layer.id).gan is state and np.array_equal(doc.layer(layer.id).pixels, pixels0)
    doc.undo_stack.redo()
    assert doc.layer(layer.id).gan.strengths == {"smile": 1.5}


def test_saved_layers_keep_the_recorded_pixels_of_a_layer_in_preview(doc):
    """Save and autosave write what a layer's latent describes: not a slider drag's uncommitted preview."""
    state = GanState("m#1", None, "m", np.zeros([4, 8]), Rect(0, 0, W, W), seed=1)
    pixels0 = np.zeros([H, W, 4], np.float32)
    layer = make_gan_layer(pixels0, state, name="gan")
    doc.add_layer(layer)
    before = (layer.gan, layer.pixels)

    def saved():
        return next(la for la in doc.saved_layers() if la.id == layer.id)

    for v in (0.2, 0.4):
        doc.preview_pixels(layer.id, np.full([H, W, 4], v, np.float32))
    assert doc.layer(layer.id).pixels[0, 0, 0] == np.float32(0.4)  # shown
    assert saved().pixels is pixels0 and saved().gan is state  # saved
    assert saved().mask is not doc.layer(layer.id).mask  # (a copy: the writer may run on another thread)
    doc.preview_pixels(layer.id, pixels0)  # back where it started: no preview any more
    doc.preview_pixels(layer.id, np.full([H, W, 4], 0.6, np.float32))
    assert saved().pixels is pixels0
    final_pixels = np.full([H, W, 4], 0.6, np.float32)
    doc.set_latent(layer.id, state.with_strength("smile", 1.5), final_pixels, before=before)  # the drag ends
    assert np.array_equal(saved().pixels, final_pixels) and saved().gan.strengths == {"smile": 1.5}
    doc.undo_stack.undo()
    assert saved().pixels is pixels0

    doc.preview_pixels(layer.id, np.full([H, W, 4], 0.8, np.float32))
    doc.reset_to(W, H, [layer])  # File > Open of a project holding that layer object: its pixels are its own
    assert saved().pixels is layer.pixels


def test_layers_must_match_the_document(doc):
    with pytest.raises(ValueError):
        doc.add_layer(make_raster_layer(W + 1, H))
    with pytest.raises(ValueError):
        doc.set_pixels(doc.active_id, np.zeros([H, W, 3], np.float32))
    assert doc.undo_stack.count() == 0


@pytest.mark.parametrize("mode", BLEND_MODES)
def test_the_canvas_blends_as_the_document_composites(qapp, mode):
    """Qt draws the layers on the canvas (premultiplied 8 bit); export and jobs use ``composite``: the two must
    agree for every mode, over backdrops of any alpha and at part opacity."""
    from PySide6.QtGui import QImage, QPainter

    from editor.canvas import COMPOSITION_MODES

    rng = np.random.default_rng(0)
    size = 64
    below = rng.random((size, size, 4)).astype(np.float32)
    below[..., 3] = np.where(rng.random((size, size)) < 0.3, 0, rng.random((size, size)))
    below[:8, :, 3] = 1.0
    above = rng.random((size, size, 4)).astype(np.float32)

    def qimage(rgba):
        return QImage(to_display(rgba).tobytes(), size, size, QImage.Format.Format_RGBA8888_Premultiplied).copy()

    image = QImage(size, size, QImage.Format.Format_RGBA8888_Premultiplied)
    image.fill(0)
    painter = QPainter(image)
    painter.drawImage(0, 0, qimage(below))
    painter.setOpacity(0.8)
    painter.setCompositionMode(COMPOSITION_MODES[mode])
    painter.drawImage(0, 0, qimage(above))
    painter.end()
    drawn = np.frombuffer(image.constBits(), np.uint8).reshape(size, size, 4).astype(np.float32)
    ours = to_display(composite([(below, 1.0), (above, 0.8, mode)], size, size)).astype(np.float32)
    err = np.abs(drawn - ours)  # in 1/255 steps
    assert err.mean() < 0.6 and np.percentile(err, 99.5) <= 2.0 and (err > 3).mean() < 0.005


def _gan(pixels, placement):
    return make_gan_layer(pixels, GanState("m#1", None, "m", np.zeros([4, 8]), placement, seed=1), name="gan")


def test_crop_cuts_every_layer_moves_gan_squares_and_undoes_exactly(doc):
    rng = np.random.default_rng(3)
    paint = make_raster_layer(W, H, name="paint", pixels=rng.random([H, W, 4]).astype(np.float32))
    doc.add_layer(paint)
    gan = _gan(rng.random([H, W, 4]).astype(np.float32), Rect(8, 0, H, H))
    doc.add_layer(gan)
    stroke(doc, [(20, 10), (40, 30)])  # a mask on the GAN layer
    before = {la.id: (la.pixels.copy(), la.mask.copy(), la.gan) for la in doc.layers}
    sizes = []
    doc.resized.connect(lambda: sizes.append(doc.size))
    count = doc.undo_stack.count()

    doc.crop(Rect(10, 5, 30, 20))
    assert doc.size == (30, 20) and sizes == [(30, 20)] and doc.undo_stack.count() == count + 1
    assert doc.undo_stack.undoText() == "Crop to 30 x 20" and doc.active_id == gan.id
    for la in doc.layers:
        pixels, mask, _ = before[la.id]
        np.testing.assert_array_equal(la.pixels, pixels[5:25, 10:40])
        np.testing.assert_array_equal(la.mask, mask[5:25, 10:40])
    assert doc.layer(gan.id).gan.placement == Rect(-2, -5, H, H)  # the render's square moved with the picture
    assert doc.layer(gan.id).gan.seed == 1 and doc.flatten().shape == (20, 30, 4)

    doc.undo_stack.undo()
    assert doc.size == (W, H) and sizes[-1] == (W, H)
    for la in doc.layers:
        pixels, mask, state = before[la.id]
        np.testing.assert_array_equal(la.pixels, pixels)
        np.testing.assert_array_equal(la.mask, mask)
        assert la.gan == state
    doc.undo_stack.redo()
    assert doc.size == (30, 20) and doc.layer(gan.id).gan.placement == Rect(-2, -5, H, H)

    doc.crop(Rect(-10, -10, 100, 100))  # clipped to the picture: nothing to do, no undo step
    assert doc.size == (30, 20) and doc.undo_stack.count() == count + 1
    with pytest.raises(ValueError, match="empty"):
        doc.crop(Rect(40, 40, 5, 5))


def test_crop_during_a_slider_preview_keeps_the_recorded_pixels(doc):
    layer = _gan(np.zeros([H, W, 4], np.float32), Rect(0, 0, W, W))
    doc.add_layer(layer)
    doc.preview_pixels(layer.id, np.full([H, W, 4], 0.5, np.float32))  # a drag's frame, not recorded
    doc.crop(Rect(0, 0, 10, 10))
    assert (doc.layer(layer.id).pixels == 0).all()  # what the latent describes, not the preview
    doc.undo_stack.undo()
    assert (doc.layer(layer.id).pixels == 0).all() and doc.size == (W, H)


def test_resize_image_scales_layers_masks_and_gan_squares(doc):
    half = np.zeros([H, W, 4], np.float32)
    half[:, : W // 2] = (1.0, 0.0, 0.0, 1.0)  # opaque red beside transparent black
    doc.add_layer(make_raster_layer(W, H, name="red", pixels=half))
    gan = _gan(np.ones([H, W, 4], np.float32), Rect(8, 0, H, H))
    doc.add_layer(gan)
    doc.set_mask(gan.id, np.pad(np.ones([H // 2, W // 2], np.float32), ((0, H // 2), (0, W // 2))))

    doc.resize_image(W // 2, H // 2)
    assert doc.size == (32, 24) and doc.undo_stack.undoText() == "Resize image to 32 x 24"
    red = doc.layers[1].pixels
    assert red.shape == (24, 32, 4)
    visible = red[..., 3] > 0
    assert visible[:, :16].all() and not visible[:, 16:].any()
    np.testing.assert_allclose(red[visible][:, :3], [[1.0, 0.0, 0.0]] * int(visible.sum()))  # no dark fringe
    assert doc.layer(gan.id).gan.placement == Rect(4, 0, 24, 24)
    mask = doc.layer(gan.id).mask
    assert mask.shape == (24, 32) and (mask[:12, :16] == 1).all() and (mask[12:] == 0).all()

    doc.undo_stack.undo()
    assert doc.size == (W, H) and doc.layer(gan.id).gan.placement == Rect(8, 0, H, H)
    np.testing.assert_array_equal(doc.layers[1].pixels, half)
    doc.resize_image(W * 2, H)  # not in proportion: the square becomes a rectangle with the picture
    assert doc.layer(gan.id).gan.placement == Rect(16, 0, 2 * H, H)
    with pytest.raises(ValueError, match="at least 1 x 1"):
        doc.resize_image(0, 5)

    # computed apart (as off the GUI thread), then applied: the same result; progress once per layer, then done
    doc.undo_stack.undo()
    calls = []
    scaled = scale_layers(
        doc.saved_layers(), doc.size, 40, 12, progress=lambda done, total: calls.append((done, total))
    )
    n = len(doc.layers)
    assert calls == [(i, n) for i in range(n + 1)]
    doc.resize_image(40, 12, layers=scaled)
    apart = [(layer.pixels.copy(), layer.mask.copy(), layer.gan and layer.gan.placement) for layer in doc.layers]
    doc.undo_stack.undo()
    doc.resize_image(40, 12)
    assert apart[-1][2] == Rect(5, 0, 30, 12)
    for (pixels, mask, placement), layer in zip(apart, doc.layers):
        assert np.array_equal(pixels, layer.pixels) and np.array_equal(mask, layer.mask)
        assert placement == (layer.gan and layer.gan.placement)
