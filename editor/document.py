"""The document model: layers, masks and an undo stack. No widgets.

Layer pixels are float32 [H, W, 4] RGBA with **straight** (non-premultiplied) alpha, the convention of the image
files and of ``ganmodels.imageio``; ``flatten`` composites with "over", per-layer opacity and blend modes. Masks
are float32 [H, W] with 1 = fill (the area inpainting will repaint). Every layer has the document's size.

Every change goes through a ``QUndoCommand`` pushed on ``Document.undo_stack`` (see ``editor.commands``): the
public methods below only build commands. The private ``_``-methods are the primitive edits commands call; they
emit the signals views listen to. Arrays held by layers are treated as values: pixels are replaced, never written
in place; masks are written in place only by mask strokes, which keep the patches they changed for undo.

The active layer is selection state, not document content, and is not undoable.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack

from editor import commands
from editor.latent import GanState
from editor.raster import Dab, Rect, blank_rgba, composite, over_background, resize, resize_rgba
from ganmodels.blending import BLEND_MODES, blend_label

if TYPE_CHECKING:
    from editor.pti import PtiWeights

LAYER_KINDS = ("raster", "gan")


def new_layer_id() -> str:
    """A unique layer id."""
    return uuid.uuid4().hex[:12]


class BlendMergeError(ValueError):
    """A merge that blend modes would make change the picture (explained to the user in a box, not a status line)."""


@dataclasses.dataclass(eq=False)
class Layer:
    """One layer. ``gan`` holds the latent state of GAN layers (None for raster layers)."""

    id: str
    name: str
    kind: str
    pixels: np.ndarray  # float32 [H, W, 4], straight alpha
    mask: np.ndarray  # float32 [H, W], 1 = fill
    visible: bool = True
    opacity: float = 1.0
    gan: GanState | None = None
    blend: str = "normal"  # how it mixes with the layers below (``ganmodels.blending.BLEND_MODES``)

    def __post_init__(self) -> None:
        if self.kind not in LAYER_KINDS:
            raise ValueError(f"layer kind must be one of {LAYER_KINDS}, got {self.kind!r}")
        if self.pixels.ndim != 3 or self.pixels.shape[2] != 4:
            raise ValueError(f"layer pixels must be [H, W, 4], got {self.pixels.shape}")
        if self.mask.shape != self.pixels.shape[:2]:
            raise ValueError(f"layer mask {self.mask.shape} does not match pixels {self.pixels.shape[:2]}")
        if (self.kind == "gan") != (self.gan is not None):
            raise ValueError("GAN layers need a GanState and raster layers must not have one")
        if self.blend not in BLEND_MODES:
            raise ValueError(f"blend mode must be one of {BLEND_MODES}, got {self.blend!r}")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.pixels.shape[1], self.pixels.shape[0]

    def copy(self, *, name: str | None = None, new_id: bool = True) -> Layer:
        """A deep copy (a new id by default)."""
        return dataclasses.replace(
            self,
            id=new_layer_id() if new_id else self.id,
            name=self.name if name is None else name,
            pixels=self.pixels.copy(),
            mask=self.mask.copy(),
        )


def make_raster_layer(
    width: int, height: int, *, name: str = "Layer", pixels: np.ndarray | None = None, fill=None
) -> Layer:
    """A raster layer: transparent, filled with an RGBA colour, or holding ``pixels`` [H, W, 4]."""
    if pixels is None:
        pixels = blank_rgba(width, height, fill if fill is not None else (0.0, 0.0, 0.0, 0.0))
    pixels = np.ascontiguousarray(pixels, np.float32)
    return Layer(
        id=new_layer_id(),
        name=name,
        kind="raster",
        pixels=pixels,
        mask=np.zeros([height, width], np.float32),
    )


def make_gan_layer(pixels: np.ndarray, state: GanState, *, name: str) -> Layer:
    """A GAN layer from its rendered document-sized pixels [H, W, 4] and latent state."""
    h, w = pixels.shape[:2]
    return Layer(
        id=new_layer_id(),
        name=name,
        kind="gan",
        pixels=np.ascontiguousarray(pixels, np.float32),
        mask=np.zeros([h, w], np.float32),
        gan=state,
    )


def scale_layers(
    layers: Sequence[Layer],
    size: tuple[int, int],
    width: int,
    height: int,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> list[Layer]:
    """Copies of ``layers`` (of a ``size`` = (w, h) picture) scaled to ``width`` x ``height``: pixels alpha-weighted,
    masks, and each GAN layer's render square with them. Reads only its arguments, so it may run off the GUI
    thread; ``progress(done, total)`` is called per layer (and may raise to stop; total 0 for a single layer,
    which has no steps to show)."""
    sx, sy = width / size[0], height / size[1]
    out = []
    steps = len(layers) if len(layers) > 1 else 0
    for i, layer in enumerate(layers):
        if progress is not None:
            progress(i, steps)
        gan = layer.gan
        if gan is not None:
            p = gan.placement
            x0, y0 = round(p.x * sx), round(p.y * sy)
            x1, y1 = round((p.x + p.w) * sx), round((p.y + p.h) * sy)
            gan = gan.replace(placement=Rect(x0, y0, max(1, x1 - x0), max(1, y1 - y0)))
        mask = resize(layer.mask[..., None], width, height)[..., 0]
        out.append(
            dataclasses.replace(
                layer, pixels=resize_rgba(layer.pixels, width, height), mask=np.ascontiguousarray(mask), gan=gan
            )
        )
    if progress is not None:
        progress(len(layers), steps)
    return out


class Document(QObject):
    """An image made of layers (bottom first), with undo."""

    layers_changed = Signal()  # layers added, removed or reordered
    layer_changed = Signal(str)  # name, visibility, opacity, blend mode or latent state of one layer
    layer_pixels_changed = Signal(str)
    mask_changed = Signal(str, object)  # layer id, changed Rect (None = whole mask)
    active_changed = Signal(str)  # "" when no layer is active
    reset = Signal()  # replaced wholesale (new / open): size, layers and history
    resized = Signal()  # cropped or resized (or that undone): size, every layer's pixels and mask; same layer ids
    path_changed = Signal()  # saved under another file name

    def __init__(self, width: int = 512, height: int = 512, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._width, self._height = int(width), int(height)
        self._layers: list[Layer] = []
        self._active_id = ""
        self.path: Path | None = None  # the file the document came from, if any
        # Save Project must not overwrite ``path`` (another program's file with things these layers cannot keep)
        self.keep_file = False
        self.model_path: Path | None = None  # the model file the document's GAN layers were last made with
        # Pivotal-tuning weights by the key GAN layers name in ``GanState.pti_weights``: document content that is
        # saved with the project, kept across undo (an undone layer may come back) and replaced by ``reset_to``.
        self.pti_weights: dict[str, PtiWeights] = {}
        # The recorded pixels of layers that show an uncommitted preview (a slider drag): what their latents describe.
        self._committed: dict[str, np.ndarray] = {}
        self.undo_stack = QUndoStack(self)

    # ----------------------------------------------------------------------------------------------------------
    # Reading

    @property
    def width(self) -> int:
        return self._width

    @property
    def height(self) -> int:
        return self._height

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self._width, self._height

    @property
    def layers(self) -> tuple[Layer, ...]:
        """Layers bottom to top (read-only view: change them through the methods below)."""
        return tuple(self._layers)

    def layer(self, layer_id: str) -> Layer:
        """The layer with this id (KeyError if there is none)."""
        for layer in self._layers:
            if layer.id == layer_id:
                return layer
        raise KeyError(layer_id)

    def find(self, layer_id: str) -> Layer | None:
        """The layer with this id, or None."""
        return next((layer for layer in self._layers if layer.id == layer_id), None)

    def index_of(self, layer_id: str) -> int:
        """Position of a layer (0 = bottom)."""
        for i, layer in enumerate(self._layers):
            if layer.id == layer_id:
                return i
        raise KeyError(layer_id)

    @property
    def active_id(self) -> str:
        return self._active_id

    @property
    def active_layer(self) -> Layer | None:
        return self.find(self._active_id)

    def saved_layers(self) -> list[Layer]:
        """Copies of the layers as a file keeps them (Save Project, autosave): masks copied, and a layer in the middle
        of a slider drag with the pixels recorded before it, which its latent state describes, not the preview."""
        return [
            dataclasses.replace(layer, mask=layer.mask.copy(), pixels=self._committed.get(layer.id, layer.pixels))
            for layer in self._layers
        ]

    def flatten(self, *, exclude: Collection[str] = ()) -> np.ndarray:
        """Visible layers (but those in ``exclude``) composited bottom to top: straight-alpha RGBA float32
        [H, W, 4]."""
        return composite(
            (
                (layer.pixels, layer.opacity, layer.blend)
                for layer in self._layers
                if layer.visible and layer.id not in exclude
            ),
            self._width,
            self._height,
        )

    def flatten_rgb(
        self, background: Sequence[float] = (1.0, 1.0, 1.0), *, exclude: Collection[str] = ()
    ) -> np.ndarray:
        """``flatten`` over an opaque background: RGB float32 [H, W, 3] (what inpainting and inversion read)."""
        return over_background(self.flatten(exclude=exclude), background)

    # ----------------------------------------------------------------------------------------------------------
    # Not undoable: replacing the whole document, selection, transient previews

    def reset_to(
        self,
        width: int,
        height: int,
        layers: Sequence[Layer] = (),
        *,
        path: Path | None = None,
        pti_weights: Mapping[str, PtiWeights] | None = None,
        keep_file: bool = False,
    ) -> None:
        """Start over with new content (File > New / Open) and the tuned weights its layers use; clears the
        history. ``keep_file``: ``path`` must not be overwritten by Save (see ``keep_file`` in ``__init__``)."""
        for layer in layers:
            if layer.size != (width, height):
                raise ValueError(f"layer {layer.name!r} is {layer.size}, the document is {(width, height)}")
        self.undo_stack.clear()
        self._committed.clear()
        self._width, self._height = int(width), int(height)
        self._layers = list(layers)
        self._active_id = self._layers[-1].id if self._layers else ""
        self.path = path
        self.keep_file = keep_file
        self.pti_weights = dict(pti_weights or {})
        self.undo_stack.setClean()
        self.reset.emit()
        self.layers_changed.emit()
        self.active_changed.emit(self._active_id)

    def set_path(self, path: Path | None, *, keep_file: bool = False) -> None:
        """The file the document now belongs to (after Save As, or a recovery)."""
        self.keep_file = keep_file
        if path != self.path:
            self.path = path
            self.path_changed.emit()

    def set_active(self, layer_id: str) -> None:
        """Select the layer edits apply to ("" for none)."""
        if layer_id and self.find(layer_id) is None:
            raise KeyError(layer_id)
        if layer_id != self._active_id:
            self._active_id = layer_id
            self.active_changed.emit(layer_id)

    def preview_pixels(self, layer_id: str, pixels: np.ndarray) -> None:
        """Show pixels without recording them (slider drags). The command that ends the gesture must be given
        the pre-preview state as ``before`` so undo restores it. Previewing the recorded pixels again ends the
        preview; so does any recorded change of the layer's pixels."""
        committed = self._committed.get(layer_id, self.layer(layer_id).pixels)
        self._set_pixels(layer_id, pixels)
        if pixels is not committed:
            self._committed[layer_id] = committed

    # ----------------------------------------------------------------------------------------------------------
    # Undoable edits (each pushes one command)

    def add_layer(self, layer: Layer, index: int | None = None, *, text: str = "Add layer") -> None:
        """Insert a layer (on top by default) and make it active."""
        if layer.size != self.size:
            raise ValueError(f"layer is {layer.size}, the document is {self.size}")
        if self.find(layer.id) is not None:
            raise ValueError(f"a layer with id {layer.id} already exists")
        index = len(self._layers) if index is None else max(0, min(index, len(self._layers)))
        self.undo_stack.push(commands.AddLayerCommand(self, layer, index, text=text))

    def delete_layer(self, layer_id: str) -> None:
        """Remove a layer."""
        self.layer(layer_id)
        self.undo_stack.push(commands.DeleteLayerCommand(self, layer_id))

    def duplicate_layer(self, layer_id: str) -> Layer:
        """Copy a layer above itself; returns the copy."""
        src = self.layer(layer_id)
        dup = src.copy(name=f"{src.name} copy")
        self.add_layer(dup, self.index_of(layer_id) + 1, text="Duplicate layer")
        return dup

    def merge_down(self, layer_id: str) -> Layer:
        """Composite a layer onto the one below it, which becomes one raster layer (name, position and the union of
        both masks kept; a GAN layer's latent is given up); one undo step. Raises ValueError when there is no
        layer below, one of the two is hidden (its pixels would be lost) or their blend modes cannot be kept by one
        layer (the picture would change)."""
        upper = self.layer(layer_id)
        index = self.index_of(layer_id)
        if index == 0:
            raise ValueError(f"{upper.name} is the bottom layer: there is nothing below to merge it into")
        lower = self._layers[index - 1]
        hidden = [layer.name for layer in (lower, upper) if not layer.visible]
        if hidden:
            one = len(hidden) == 1
            raise ValueError(
                f"{' and '.join(hidden)} {'is' if one else 'are'} hidden: show {'it' if one else 'them'} to merge"
            )
        pixels = composite(
            [(lower.pixels, lower.opacity), (upper.pixels, upper.opacity, upper.blend)], self._width, self._height
        )
        merged = make_raster_layer(self._width, self._height, name=lower.name, pixels=pixels)
        merged.blend = lower.blend
        if lower.blend != "normal" or upper.blend != "normal":  # (two Normal layers always merge exactly)
            stack = [(la.pixels, la.opacity, la.blend) for la in self._layers if la.visible]
            at = [la.id for la in self._layers if la.visible].index(lower.id)
            after = [*stack[:at], (pixels, 1.0, merged.blend), *stack[at + 2 :]]
            if np.abs(composite(after, self._width, self._height) - self.flatten()).max() > 1.5 / 255:
                modes = " and ".join(
                    f"{la.name} ({blend_label(la.blend)})" for la in (lower, upper) if la.blend != "normal"
                )
                raise BlendMergeError(
                    f"Merging would change the picture: {modes} mixes with the layers below it in a way one merged "
                    "layer cannot keep. Layer > Flatten Image keeps the picture as it is; setting the blend modes "
                    "to Normal first changes how it looks."
                )
        merged.mask[:] = np.maximum(lower.mask, upper.mask)
        self._replace_layers([lower.id, upper.id], merged, index - 1, text="Merge down")
        return merged

    def flatten_layers(self) -> Layer:
        """Replace every layer by one raster layer of the visible picture (hidden layers are dropped); one undo
        step."""
        if not self._layers:
            raise ValueError("the document has no layers")
        merged = make_raster_layer(self._width, self._height, name="Flattened", pixels=self.flatten())
        self._replace_layers([layer.id for layer in self._layers], merged, 0, text="Flatten image")
        return merged

    def crop(self, rect: Rect) -> None:
        """Cut the picture to ``rect`` (clipped to the document): every layer's pixels and mask; a GAN layer keeps
        its latent and its render's square moves with the picture, so slider edits still land where it shows. One
        undo step. ValueError for an empty rectangle."""
        rect = rect.clipped(self._width, self._height)
        if rect.empty:
            raise ValueError("the area to crop to is empty")
        if rect == Rect(0, 0, self._width, self._height):
            return
        rows, cols = rect.slices
        layers = []
        for layer in self.saved_layers():
            gan = layer.gan
            if gan is not None:
                p = gan.placement
                gan = gan.replace(placement=Rect(p.x - rect.x, p.y - rect.y, p.w, p.h))
            layers.append(
                dataclasses.replace(
                    layer,
                    pixels=np.ascontiguousarray(layer.pixels[rows, cols]),
                    mask=np.ascontiguousarray(layer.mask[rows, cols]),
                    gan=gan,
                )
            )
        self.undo_stack.push(commands.CanvasCommand(self, rect.w, rect.h, layers, text=f"Crop to {rect.w} x {rect.h}"))

    def resize_image(self, width: int, height: int, *, layers: Sequence[Layer] | None = None) -> None:
        """Scale the picture to ``width`` x ``height``: every layer's pixels (alpha-weighted) and mask; a GAN
        layer's render square is scaled with it. One undo step. ``layers``: what :func:`scale_layers` made of
        :meth:`saved_layers` (e.g. off the GUI thread) while the document did not change."""
        width, height = int(width), int(height)
        if width < 1 or height < 1:
            raise ValueError(f"an image needs at least 1 x 1 pixels, not {width} x {height}")
        if (width, height) == self.size:
            return
        if layers is None:
            layers = scale_layers(self.saved_layers(), self.size, width, height)
        elif [layer.id for layer in layers] != [layer.id for layer in self._layers] or any(
            layer.pixels.shape[:2] != (height, width) or layer.mask.shape != (height, width) for layer in layers
        ):
            raise ValueError("the scaled layers are not this document's at the new size")
        self.undo_stack.push(
            commands.CanvasCommand(self, width, height, list(layers), text=f"Resize image to {width} x {height}")
        )

    def _replace_layers(self, ids: list[str], layer: Layer, index: int, *, text: str) -> None:
        self.undo_stack.beginMacro(text)
        try:
            for layer_id in ids:
                self.undo_stack.push(commands.DeleteLayerCommand(self, layer_id))
            self.undo_stack.push(commands.AddLayerCommand(self, layer, index, text=text))
        finally:
            self.undo_stack.endMacro()

    def move_layer(self, layer_id: str, index: int) -> None:
        """Move a layer to position ``index`` (0 = bottom)."""
        index = max(0, min(index, len(self._layers) - 1))
        if index != self.index_of(layer_id):
            self.undo_stack.push(commands.MoveLayerCommand(self, layer_id, index))

    def rename_layer(self, layer_id: str, name: str) -> None:
        """Rename a layer (blank names are refused)."""
        name = name.strip()
        if name and name != self.layer(layer_id).name:
            self.undo_stack.push(commands.SetLayerPropertyCommand(self, layer_id, "name", name, text="Rename layer"))

    def set_visible(self, layer_id: str, visible: bool) -> None:
        """Show or hide a layer."""
        if bool(visible) != self.layer(layer_id).visible:
            text = "Show layer" if visible else "Hide layer"
            self.undo_stack.push(commands.SetLayerPropertyCommand(self, layer_id, "visible", bool(visible), text=text))

    def set_opacity(self, layer_id: str, opacity: float, *, gesture: object = None) -> None:
        """Set a layer's opacity in [0, 1]; calls with the same non-None ``gesture`` merge into one undo step."""
        opacity = float(min(max(opacity, 0.0), 1.0))
        if opacity != self.layer(layer_id).opacity:
            self.undo_stack.push(
                commands.SetLayerPropertyCommand(
                    self, layer_id, "opacity", opacity, text="Layer opacity", merge_key=gesture
                )
            )

    def set_blend(self, layer_id: str, mode: str, *, gesture: object = None) -> None:
        """Set a layer's blend mode (one of ``BLEND_MODES``); calls with the same non-None ``gesture`` (modes tried
        one after another with the keys) merge into one undo step."""
        if mode not in BLEND_MODES:
            raise ValueError(f"unknown blend mode {mode!r}")
        if mode != self.layer(layer_id).blend:
            self.undo_stack.push(
                commands.SetLayerPropertyCommand(
                    self, layer_id, "blend", mode, text=f"Blend mode {blend_label(mode)}", merge_key=gesture
                )
            )

    def set_pixels(
        self, layer_id: str, pixels: np.ndarray, *, text: str = "Change pixels", before: np.ndarray | None = None
    ) -> None:
        """Replace a layer's pixels [H, W, 4]; ``before`` overrides the state undo returns to (after previews)."""
        pixels = self._checked_pixels(pixels)
        self.undo_stack.push(commands.SetPixelsCommand(self, layer_id, pixels, before=before, text=text))

    def set_latent(
        self,
        layer_id: str,
        state: GanState,
        pixels: np.ndarray,
        *,
        text: str = "Edit latent",
        before: tuple[GanState, np.ndarray] | None = None,
    ) -> None:
        """Set a GAN layer's latent state and its rendered pixels in one step."""
        if self.layer(layer_id).kind != "gan":
            raise ValueError("only GAN layers have a latent")
        pixels = self._checked_pixels(pixels)
        self.undo_stack.push(commands.SetLatentCommand(self, layer_id, state, pixels, before=before, text=text))

    def paint_mask(
        self,
        layer_id: str,
        dabs: Sequence[Dab],
        *,
        radius: float,
        hardness: float,
        erase: bool = False,
        stroke: object = None,
    ) -> None:
        """Stamp brush dabs into a layer's mask. Calls with the same ``stroke`` token merge into one undo step."""
        self.layer(layer_id)
        if dabs:
            self.undo_stack.push(
                commands.PaintMaskCommand(
                    self, layer_id, list(dabs), radius=radius, hardness=hardness, erase=erase, stroke=stroke
                )
            )

    def set_mask(self, layer_id: str, mask: np.ndarray, *, text: str = "Set mask") -> None:
        """Replace a layer's mask [H, W] (values clipped to [0, 1])."""
        mask = np.clip(np.asarray(mask, np.float32), 0.0, 1.0)
        if mask.shape != (self._height, self._width):
            raise ValueError(f"mask is {mask.shape}, the document is {(self._height, self._width)}")
        self.undo_stack.push(commands.SetMaskCommand(self, layer_id, mask, text=text))

    def clear_mask(self, layer_id: str) -> None:
        """Set the whole mask to 0 (nothing to fill)."""
        if self.layer(layer_id).mask.any():
            self.set_mask(layer_id, np.zeros([self._height, self._width], np.float32), text="Clear mask")

    def invert_mask(self, layer_id: str) -> None:
        """Mask := 1 - mask."""
        self.set_mask(layer_id, 1.0 - self.layer(layer_id).mask, text="Invert mask")

    # ----------------------------------------------------------------------------------------------------------
    # Primitive edits, called by commands only

    def _checked_pixels(self, pixels: np.ndarray) -> np.ndarray:
        pixels = np.ascontiguousarray(pixels, np.float32)
        if pixels.shape != (self._height, self._width, 4):
            raise ValueError(f"pixels must be {(self._height, self._width, 4)}, got {pixels.shape}")
        return pixels

    def _insert(self, index: int, layer: Layer) -> None:
        self._layers.insert(index, layer)
        self.layers_changed.emit()

    def _remove(self, layer_id: str) -> tuple[int, Layer]:
        index = self.index_of(layer_id)
        layer = self._layers.pop(index)
        if self._active_id == layer_id:
            self._active_id = ""
        self.layers_changed.emit()
        return index, layer

    def _move(self, layer_id: str, index: int) -> int:
        old = self.index_of(layer_id)
        layer = self._layers.pop(old)
        self._layers.insert(index, layer)
        self.layers_changed.emit()
        return old

    def _activate(self, layer_id: str) -> None:
        self._active_id = layer_id if self.find(layer_id) is not None else ""
        self.active_changed.emit(self._active_id)

    def _set_canvas(self, width: int, height: int, layers: Sequence[Layer]) -> None:
        self._committed.clear()
        self._width, self._height = int(width), int(height)
        self._layers = list(layers)
        if self.find(self._active_id) is None:
            self._active_id = self._layers[-1].id if self._layers else ""
        self.resized.emit()
        self.layers_changed.emit()
        self.active_changed.emit(self._active_id)

    def _set_property(self, layer_id: str, name: str, value: object) -> None:
        setattr(self.layer(layer_id), name, value)
        self.layer_changed.emit(layer_id)

    def _set_pixels(self, layer_id: str, pixels: np.ndarray) -> None:
        self.layer(layer_id).pixels = pixels
        self._committed.pop(layer_id, None)
        self.layer_pixels_changed.emit(layer_id)

    def _set_gan(self, layer_id: str, state: GanState) -> None:
        self.layer(layer_id).gan = state
        self.layer_changed.emit(layer_id)

    def _set_mask(self, layer_id: str, mask: np.ndarray) -> None:
        self.layer(layer_id).mask = mask
        self.mask_changed.emit(layer_id, None)

    def _mask_changed(self, layer_id: str, rect: Rect) -> None:
        self.mask_changed.emit(layer_id, rect)
