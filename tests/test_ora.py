"""OpenRaster files: exact round trip, the layout other programs expect, damaged files open what they can."""

from __future__ import annotations

import dataclasses
import zipfile

import numpy as np
import pytest

from ganmodels.ora import OraDocument, OraError, OraLayer, composite, read_ora, write_ora


def _doc():
    rng = np.random.default_rng(0)
    base = np.ones((6, 8, 4), np.float32)
    base[..., :3] = rng.integers(0, 256, (6, 8, 3)) / 255
    top = np.zeros((3, 4, 4), np.float32)
    top[..., 0] = 1
    top[..., 3] = 128 / 255
    return OraDocument(
        width=8,
        height=6,
        layers=[
            OraLayer("background", base),
            OraLayer("gan", top, x=2, y=1, opacity=0.5, visible=True, attrs={"gan-editor-kind": "gan"}),
            OraLayer("hidden", base.copy(), visible=False),
        ],
        extras={"latents/1.npz": b"\x00\x01binary", "document.json": b"{}"},
    )


def test_round_trip_is_exact(tmp_path):
    doc = _doc()
    p = write_ora(tmp_path / "a.ora", doc)
    back = read_ora(p)
    assert (back.width, back.height) == (8, 6)
    assert [layer.name for layer in back.layers] == ["background", "gan", "hidden"]
    for a, b in zip(doc.layers, back.layers):
        assert np.array_equal(np.round(a.pixels * 255), np.round(b.pixels * 255))
        assert (a.x, a.y, a.visible) == (b.x, b.y, b.visible) and abs(a.opacity - b.opacity) < 1e-4
    assert back.layers[1].attrs == {"gan-editor-kind": "gan"}
    assert back.extras == doc.extras and back.warnings == []


def test_layout_follows_the_openraster_spec(tmp_path):
    p = write_ora(tmp_path / "a.ora", _doc())
    with zipfile.ZipFile(p) as z:
        first = z.infolist()[0]
        assert first.filename == "mimetype" and first.compress_type == zipfile.ZIP_STORED
        assert z.read("mimetype") == b"image/openraster"
        names = set(z.namelist())
        assert {"stack.xml", "mergedimage.png", "Thumbnails/thumbnail.png"} <= names
        xml = z.read("stack.xml").decode()
    assert xml.index('name="hidden"') < xml.index('name="gan"') < xml.index('name="background"')  # top first


def test_merged_image_shows_the_composite_and_reuses_an_opaque_top_layer(tmp_path):
    import io

    from PIL import Image

    from ganmodels.imageio import float_to_uint8

    def merged_png(doc):
        p = write_ora(tmp_path / "m.ora", doc)
        with zipfile.ZipFile(p) as z:
            return z.read("mergedimage.png"), {n: z.read(n) for n in z.namelist() if n.startswith("data/")}

    doc = _doc()  # a translucent offset layer over the background, a hidden copy on top
    data, _layers = merged_png(doc)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), float_to_uint8(composite(doc)))
    one = OraDocument(width=8, height=6, layers=[doc.layers[0]])  # one opaque layer: the merged image is it
    data, layers = merged_png(one)
    assert data == layers["data/layer000.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), float_to_uint8(doc.layers[0].pixels))


def test_blend_modes_round_trip_as_svg_composite_ops_and_show_in_the_merged_image(tmp_path):
    from ganmodels.blending import BLEND_MODES

    background = np.full((2, 2, 4), 0.5, np.float32)
    background[..., 3] = 1.0
    layers = [OraLayer("background", background)]
    rng = np.random.default_rng(1)
    for mode in BLEND_MODES:
        layers.append(OraLayer(mode, rng.random((2, 2, 4)).astype(np.float32), blend=mode, opacity=0.7))
    doc = OraDocument(width=2, height=2, layers=layers)
    p = write_ora(tmp_path / "modes.ora", doc)
    with zipfile.ZipFile(p) as z:
        xml = z.read("stack.xml").decode()
    assert 'composite-op="svg:color-dodge"' in xml and 'composite-op="svg:src-over"' in xml
    back = read_ora(p)
    assert [layer.blend for layer in back.layers] == ["normal", *BLEND_MODES] and back.losses == []
    # The merged image is the editor's compositor's picture (modes included).
    from editor.raster import composite as editor_composite

    expected = editor_composite([(la.pixels, la.opacity, la.blend) for la in doc.layers], 2, 2)
    np.testing.assert_allclose(composite(doc), expected, atol=1e-5)
    flat = composite(OraDocument(width=2, height=2, layers=[dataclasses.replace(la, blend="normal") for la in layers]))
    assert np.abs(composite(doc) - flat).max() > 0.1  # (the modes change the picture)


def test_composite_respects_opacity_visibility_and_offset():
    doc = _doc()
    out = composite(doc)
    base = doc.layers[0].pixels
    assert np.allclose(out[0, 0], base[0, 0])  # outside the top layer
    a = 128 / 255 * 0.5
    expected = np.array([1, 0, 0]) * a + base[1, 2, :3] * (1 - a)
    assert np.allclose(out[1, 2, :3], expected, atol=1e-6) and np.isclose(out[1, 2, 3], 1)


def test_damaged_files(tmp_path):
    p = write_ora(tmp_path / "a.ora", _doc())
    # drop one layer's PNG: the rest still opens, with a warning
    broken = tmp_path / "b.ora"
    with zipfile.ZipFile(p) as src, zipfile.ZipFile(broken, "w") as dst:
        for info in src.infolist():
            if info.filename != "data/layer001.png":
                dst.writestr(info, src.read(info.filename))
    doc = read_ora(broken)
    assert [layer.name for layer in doc.layers] == ["background", "hidden"]
    assert any("gan" in w for w in doc.warnings)
    (tmp_path / "c.ora").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(OraError, match="not an OpenRaster"):
        read_ora(tmp_path / "c.ora")
    truncated = tmp_path / "d.ora"
    truncated.write_bytes(p.read_bytes()[: p.stat().st_size // 3])
    with pytest.raises(OraError):
        read_ora(truncated)


def test_extra_names_cannot_escape(tmp_path):
    doc = _doc()
    doc.extras = {"../evil": b"x"}
    with pytest.raises(ValueError):
        write_ora(tmp_path / "e.ora", doc)


def _foreign_ora(path):
    """An .ora as Krita writes one: a hidden group, a group at half opacity, a hue and a multiply layer, an offset
    layer."""
    import io

    from PIL import Image

    def png(color, size):
        buf = io.BytesIO()
        Image.new("RGBA", size, color).save(buf, format="PNG")
        return buf.getvalue()

    stack = """<?xml version='1.0' encoding='UTF-8'?>
<image w="8" h="6" version="0.0.1"><stack>
  <stack name="hidden group" visibility="hidden"><layer name="in hidden" src="data/a.png"/></stack>
  <stack name="half group" opacity="0.5"><layer name="in half" src="data/b.png" opacity="0.8"/></stack>
  <layer name="hued" src="data/c.png" composite-op="svg:hue"/>
  <layer name="multiplied" src="data/c.png" composite-op="svg:multiply"/>
  <layer name="big" src="data/d.png" x="-2" y="-1"/>
</stack></image>"""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "image/openraster", zipfile.ZIP_STORED)
        z.writestr("stack.xml", stack)
        z.writestr("data/a.png", png((255, 0, 0, 255), (8, 6)))
        z.writestr("data/b.png", png((0, 255, 0, 255), (8, 6)))
        z.writestr("data/c.png", png((0, 0, 255, 255), (8, 6)))
        z.writestr("data/d.png", png((9, 9, 9, 255), (12, 8)))
    return path


def test_another_programs_groups_blend_modes_and_overhangs_are_shown_and_named(tmp_path):
    doc = read_ora(_foreign_ora(tmp_path / "krita.ora"))
    by_name = {layer.name: layer for layer in doc.layers}
    assert [layer.name for layer in doc.layers] == ["big", "multiplied", "hued", "in half", "in hidden"]  # bottom first
    assert by_name["multiplied"].blend == "multiply"  # a separable mode is kept
    assert by_name["hued"].blend == "normal"  # a mode these layers lack shows as Normal, and is named
    assert not by_name["in hidden"].visible  # hidden with its group
    assert by_name["in half"].opacity == pytest.approx(0.4) and by_name["in half"].visible
    assert (by_name["big"].x, by_name["big"].y) == (-2, -1)
    assert len(doc.losses) == 3 and doc.warnings == []
    assert doc.losses[0] == "blend modes, shown as Normal: hued (hue)"
    assert "hidden group, half group" in doc.losses[1]
    assert doc.losses[2].endswith("cut off: big")
    ours = _doc()
    write_ora(tmp_path / "ours.ora", ours)
    assert read_ora(tmp_path / "ours.ora").losses == []  # our own files lose nothing


def test_progress_counts_every_step_and_an_exception_from_it_leaves_the_old_file(tmp_path):
    doc = _doc()
    calls = []
    p = write_ora(tmp_path / "a.ora", doc, progress=lambda done, total: calls.append((done, total)))
    total = len(doc.layers) + 2
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert all(t == total for _, t in calls) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert sorted({d for d, _ in calls}) == list(range(total + 1))
    before = p.read_bytes()

    class Stop(Exception):
        pass

    big = dataclasses.replace(doc, layers=[OraLayer("noise", np.random.default_rng(1).random((512, 512, 4)))])
    # Stopped in the middle of the layer's PNG (its second check), at the merged image, after the zip was written
    # (just before it would replace the file): the old file stays, no temporary file is left.
    for stop_at in (0, 1, 3):
        seen = []

        def stop(done, total, stop_at=stop_at, seen=seen):
            seen.append(done)
            if done == stop_at and seen.count(done) == (2 if stop_at == 0 else 1):
                raise Stop

        with pytest.raises(Stop):
            write_ora(p, big, progress=stop)
        assert p.read_bytes() == before and sorted(x.name for x in tmp_path.iterdir()) == ["a.ora"]
