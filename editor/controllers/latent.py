"""Wires the Latent panel to the active GAN layer: slider gestures become latest-wins renders on the worker,
shown as non-undoable previews while dragging and recorded as ONE undo command when the gesture ends.

At most one render per layer is in flight: values that arrive meanwhile only update the target, which is
rendered as soon as the current render returns (so a long drag keeps showing fresh frames instead of starving
behind ever-newer requests). The runner drops any result that is not the newest for its layer.
"""

from __future__ import annotations

import dataclasses
import html

import numpy as np
from PySide6.QtCore import QObject, Signal

from editor.document import Document, Layer
from editor.jobs import JobRunner, Placement, RenderRequest, RenderResult
from editor.latent import GanState, LatentMix, sample_name, state_effective_ws
from editor.panels.latent import MIX_PART_LABELS, DirectionInfo, LatentPanel
from editor.qtimage import display_cache
from editor.session import ModelSession
from ganmodels.anchors import pick_anchor
from ganmodels.directions import effect_ends
from ganmodels.generate import seed_to_class, seeds_to_ws


@dataclasses.dataclass
class _Gesture:
    layer_id: str
    before: tuple[GanState, np.ndarray]  # what undo returns to
    target: GanState  # the newest state asked for
    text: str
    dragging: bool = True
    rendered: tuple[GanState, np.ndarray] | None = None  # the newest state shown, with its pixels
    in_flight: tuple[int, GanState] | None = None  # job id and state of the render being computed
    rename: str | None = None  # a new layer name recorded in the same undo step (a sample's name after a new seed)


def model_matches(state: GanState, session: ModelSession) -> bool:
    """Whether a GAN layer was made with the loaded model (same file, or same name for unsaved models)."""
    m = session.model
    if m is None:
        return False
    if tuple(state.ws.shape) != (m.G.num_ws, m.G.w_dim):  # another model's latent cannot be edited with this one
        return False
    if state.model_key == session.key:
        return True
    if state.model_path and m.path is not None:
        return str(state.model_path) == str(m.path)
    return state.model_name == m.name


class LatentController(QObject):
    error = Signal(str)
    frame_applied = Signal(object)  # the GanState whose render was just shown (for latency measurements)

    def __init__(
        self,
        doc: Document,
        runner: JobRunner,
        session: ModelSession,
        panel: LatentPanel,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.doc, self.runner, self.session, self.panel = doc, runner, session, panel
        self._gesture: _Gesture | None = None
        self._layer_id = ""
        self._last_mix = ("all", 0.5)  # part and amount of the last mix turned off

        doc.active_changed.connect(self.bind)
        doc.layers_changed.connect(self.bind)
        doc.layer_changed.connect(self._on_layer_changed)
        doc.reset.connect(self._on_reset)
        doc.resized.connect(self._on_reset)  # (a drag's renders have the old size: it ends as it stands)
        session.model_changed.connect(self._on_model_changed)
        session.directions_changed.connect(self._on_model_changed)
        runner.job_finished.connect(self._on_job_finished)
        runner.job_failed.connect(self._on_job_failed)
        runner.job_cancelled.connect(self._on_job_cancelled)

        panel.gesture_started.connect(self._on_gesture_started)
        panel.gesture_finished.connect(self._on_gesture_finished)
        panel.strength_changed.connect(self.set_strength)
        panel.truncation_changed.connect(self.set_truncation)
        panel.seed_chosen.connect(self.set_seed)
        panel.reset_requested.connect(self.reset_directions)
        panel.mix_source_chosen.connect(self.set_mix_source)
        panel.mix_part_chosen.connect(self.set_mix_part)
        panel.mix_amount_changed.connect(self.set_mix_amount)
        self._on_model_changed()

    # ----------------------------------------------------------------------------------------------------------
    # Binding the panel to the active layer

    def editable_layer(self) -> Layer | None:
        """The active layer if it is a GAN layer of the loaded model."""
        layer = self.doc.active_layer
        if layer is None or layer.gan is None or not model_matches(layer.gan, self.session):
            return None
        return layer

    def bind(self, *_args: object) -> None:
        """Show the active layer's latent (or why it cannot be edited)."""
        layer = self.doc.active_layer
        if self._gesture is not None and (layer is None or layer.id != self._gesture.layer_id):
            self._abandon_gesture()
        self.panel.set_new_sample_enabled(self.session.loaded)
        why = None
        if not self.session.loaded:
            why = "Open a model to generate and edit GAN layers."
        elif layer is None or layer.gan is None:
            why = "Select a GAN layer to edit its latent, or add one with New sample."
        elif not model_matches(layer.gan, self.session):
            model = self.session.model
            same_name = model is not None and layer.gan.model_name == model.name and layer.gan.model_path
            what = f"the model file {layer.gan.model_path}" if same_name else f"the model {layer.gan.model_name!r}"
            why = f"{layer.name} was made with {what}; open it to edit this layer."
        if why is not None:
            self._layer_id = ""
            self.panel.show_layer(None, why)
            self.panel.set_values(seed=None, truncation=1.0, strengths={})  # (not the last edited layer's values)
            self.panel.set_mix_choices([], "", None)
            self.panel.set_mix_values(part="all", amount=0.5, active=False)
            return
        self._layer_id = layer.id
        g = layer.gan
        seed = f" · seed {g.seed}" if g.seed is not None else ""
        if g.anchor is not None:  # (truncation pulls towards that training picture's latent)
            seed += f" · near training picture {g.anchor}"
        model = self.session.model
        missing = [n for n, v in g.strengths.items() if v and model is not None and n not in model.directions]
        note = (
            f"<br><i>Not in the loaded model (open its direction file): {html.escape(', '.join(missing))}</i>"
            if missing
            else ""
        )
        self.panel.show_layer(f"<b>{html.escape(layer.name)}</b>{seed}{note}")
        if self._gesture is None:
            self.panel.set_values(seed=g.seed, truncation=g.truncation, strengths=dict(g.strengths))
            self._show_mix(layer)

    def mix_sources(self, layer: Layer) -> list[Layer]:
        """The other GAN layers of the loaded model, whose latents can be mixed into ``layer``'s (top first)."""
        return [  # (not a layer with tuned weights: its picture needs them, and a mix takes only the latent)
            other
            for other in reversed(self.doc.layers)
            if other.id != layer.id
            and other.gan is not None
            and other.gan.pti_weights is None
            and model_matches(other.gan, self.session)
        ]

    def _show_mix(self, layer: Layer) -> None:
        assert layer.gan is not None
        mix = layer.gan.mix
        sources = self.mix_sources(layer)
        current, kept = "", None
        if mix is not None:
            source = next((o for o in sources if o.id == mix.source_id), None)
            if source is not None and np.array_equal(self._rendered_ws(source), mix.ws):
                current = source.id
            else:  # the layer was deleted or has changed since: the mix keeps the latent it had
                kept = mix.source
        self.panel.set_mix_choices([(o.id, o.name) for o in sources], current, kept)
        self.panel.set_mix_values(
            part=mix.part if mix else "all", amount=mix.amount if mix else 0.5, active=mix is not None
        )

    def _rendered_ws(self, layer: Layer) -> np.ndarray:
        """The latent a GAN layer of the loaded model renders: [num_ws, w_dim]."""
        assert layer.gan is not None and self.session.model is not None
        centre = self.session.truncation_centre(layer.gan.class_index, layer.gan.anchor)
        return state_effective_ws(layer.gan, centre=centre, directions=self.session.model.directions)

    def _on_model_changed(self) -> None:
        model = self.session.model
        infos = []
        if model is not None:
            for d in model.directions.values():
                tip = d.description or d.name
                infos.append(
                    DirectionInfo(
                        d.name,
                        d.scale,
                        f"{tip}\n{d.method}, layers {d.layers[0]}-{d.layers[1] - 1}",
                        ends=effect_ends(d.description),
                    )
                )
        self.panel.set_directions(infos, model_loaded=model is not None)
        self.bind()

    def _on_layer_changed(self, layer_id: str) -> None:
        g = self._gesture
        if g is not None and layer_id == g.layer_id:
            layer = self.doc.find(layer_id)
            if layer is not None and layer.gan is not g.before[0]:
                # Undo / redo changed the latent under an open slider gesture, which was built on the state before:
                # the gesture is dropped (committing it would put back what was undone, out of the History's sight).
                self._gesture = None
                self.bind()
            return
        if self._layer_id and g is None:  # (another layer's name or latent shows in the Mix box)
            self.bind()

    def _on_reset(self) -> None:
        self._gesture = None
        self.bind()

    # ----------------------------------------------------------------------------------------------------------
    # Edits

    def set_strength(self, name: str, value: float) -> None:
        """Move one direction of the active layer (part of the current gesture)."""
        self._change(lambda s: s.with_strength(name, value), f"Direction {name}: {value:+.2f}")

    def set_truncation(self, value: float) -> None:
        """Change the truncation psi of the active layer (part of the current gesture)."""
        self._change(lambda s: s.replace(truncation=float(value)), f"Truncation {value:.2f}")

    def set_seed(self, seed: int) -> None:
        """Re-sample the active layer from another seed (keeps truncation and direction edits).

        For a conditional model, a sample drawn in its seed's own class takes the new seed's class (so it is the
        picture New Sample gives for that seed); a class chosen for it is kept. A layer still named after its seed
        (:func:`sample_name`) is renamed in the same undo step."""
        layer = self.editable_layer()
        if layer is None or layer.gan is None or layer.gan.seed is None or layer.gan.seed == seed:
            return
        assert self.session.model is not None
        G, old, bank = self.session.model.G, layer.gan, self.session.model.anchors
        cls, anchor = old.class_index, old.anchor
        if anchor is not None and bank is not None and 0 <= anchor < len(bank):
            if anchor == pick_anchor(old.seed, G, bank):  # the seed's own anchor: the new seed's (as New Sample)
                anchor = pick_anchor(seed, G, bank)
            elif G.c_dim > 0 and anchor == pick_anchor(old.seed, G, bank, class_index=cls):  # one of a chosen class
                anchor = pick_anchor(seed, G, bank, class_index=cls)
            cls = int(bank.labels[anchor]) if G.c_dim > 0 else None
            base = seeds_to_ws(G, [seed], classes=None if cls is None else [cls])[0].cpu().numpy()
        elif G.c_dim > 0 and cls is not None and cls >= 0:
            cls = seed_to_class(seed, G) if cls == seed_to_class(old.seed, G) else cls
            base = seeds_to_ws(G, [seed], classes=[cls])[0].cpu().numpy()  # [num_ws, w_dim]
        else:
            base = seeds_to_ws(G, [seed])[0].cpu().numpy()
        rename = sample_name(seed, cls) if layer.name == sample_name(old.seed, old.class_index) else None
        self._single(
            lambda s: s.replace(ws=base, seed=int(seed), class_index=cls, anchor=anchor), f"Seed {seed}", rename=rename
        )

    def set_mix_source(self, layer_id: str) -> None:
        """Blend in another GAN layer's rendered latent ("" removes the mix); keeps the part and amount chosen."""
        layer = self.editable_layer()
        if layer is None or layer.gan is None:
            return
        old = layer.gan.mix
        if not layer_id:
            if old is not None:
                self._last_mix = (old.part, old.amount)  # (a mix turned on again starts from these)
                self._single(lambda s: s.replace(mix=None), "Mix off")
            return
        source = self.doc.find(layer_id)
        if source is None or source.gan is None or source.id == layer.id or not model_matches(source.gan, self.session):
            return
        try:
            ws = self._rendered_ws(source)
        except (RuntimeError, ValueError, IndexError) as e:
            self.error.emit(f"{source.name} cannot be mixed in: {e}")
            return
        mix = LatentMix(
            ws,
            source=source.name,
            source_id=source.id,
            part=old.part if old else self._last_mix[0],
            amount=old.amount if old else self._last_mix[1],
        )
        self._single(lambda s: s.replace(mix=mix), f"Mix with {source.name}")

    def set_mix_part(self, part: str) -> None:
        """Which rows of the mixed-in latent to take (one undo step)."""
        layer = self.editable_layer()
        if layer is None or layer.gan is None or layer.gan.mix is None or layer.gan.mix.part == part:
            return
        label = MIX_PART_LABELS.get(part, part).split(":")[0]
        self._single(lambda s: s.replace(mix=dataclasses.replace(s.mix, part=part)), f"Mix part: {label}")

    def set_mix_amount(self, value: float) -> None:
        """How far to blend towards the mixed-in latent (part of the current gesture)."""
        layer = self.editable_layer()
        if layer is None or layer.gan is None or layer.gan.mix is None:
            return
        self._change(
            lambda s: s.replace(mix=dataclasses.replace(s.mix, amount=value)) if s.mix is not None else s,
            f"Mix amount {value:.2f}",
        )

    def reset_directions(self) -> None:
        """All direction strengths of the active layer back to 0 (one undo step)."""
        layer = self.editable_layer()
        if layer is not None and layer.gan is not None and layer.gan.strengths:
            self._single(lambda s: s.replace(strengths={}), "Reset directions")
            self.panel.set_values(seed=layer.gan.seed, truncation=layer.gan.truncation, strengths={})

    def _single(self, change, text: str, *, rename: str | None = None) -> None:
        """One change as one undo step (with ``rename``: the layer's new name in the same step)."""
        self._on_gesture_started()
        if rename is not None and self._gesture is not None:
            self._gesture.rename = rename
        self._change(change, text)
        self._on_gesture_finished()

    def _on_gesture_started(self) -> None:
        layer = self.editable_layer()
        if layer is None or layer.gan is None:
            return
        if self._gesture is None:
            self._gesture = _Gesture(layer.id, (layer.gan, layer.pixels), layer.gan, "Edit latent")
        self._gesture.dragging = True

    def _on_gesture_finished(self) -> None:
        if self._gesture is not None:
            self._gesture.dragging = False
            self._maybe_commit()

    def _change(self, change, text: str) -> None:
        if self._gesture is None:
            self._on_gesture_started()
            if self._gesture is None:
                return
            self._gesture.dragging = False
        g = self._gesture
        g.target = change(g.target)
        g.text = text
        self._request()

    # ----------------------------------------------------------------------------------------------------------
    # Rendering

    def _request(self) -> None:
        g = self._gesture
        if g is None or g.in_flight is not None:
            return  # the target is rendered when the current render returns
        layer = self.doc.find(g.layer_id)
        model = self.session.model
        if layer is None or model is None:
            self._abandon_gesture()
            return
        try:
            centre = self.session.truncation_centre(g.target.class_index, g.target.anchor)
            ws = state_effective_ws(g.target, centre=centre, directions=model.directions)
        except (RuntimeError, ValueError, IndexError) as e:  # (a latent that does not fit the model: never stuck)
            self._abandon_gesture()
            self.error.emit(f"This layer cannot be edited with the loaded model: {e}")
            return
        placement = Placement(g.target.placement, self.doc.width, self.doc.height)
        model_key = g.target.pti_weights or self.session.key  # a layer with tuned weights renders with them
        request = RenderRequest(g.layer_id, model_key, ws, g.target.noise_mode, placement=placement)
        state = g.target
        g.in_flight = (-1, state)  # a sync runner finishes inside submit
        job = self.runner.submit(request)
        if g is self._gesture and g.in_flight is not None and g.in_flight[0] == -1:
            g.in_flight = (job.id, state)

    def _on_job_finished(self, job_id: int, result: object) -> None:
        g = self._gesture
        if g is None or g.in_flight is None or not isinstance(result, RenderResult) or result.layer_id != g.layer_id:
            return
        if g.in_flight[0] not in (job_id, -1):
            return
        state = g.in_flight[1]
        g.in_flight = None
        assert result.pixels is not None
        g.rendered = (state, result.pixels)
        if result.display is not None:
            display_cache.put(result.pixels, result.display)
        self.doc.preview_pixels(g.layer_id, result.pixels)
        self.frame_applied.emit(state)
        if g.target is not state:
            self._request()
        else:
            self._maybe_commit()

    def _on_job_failed(self, job_id: int, message: str) -> None:
        g = self._gesture
        if g is not None and g.in_flight is not None and g.in_flight[0] in (job_id, -1):
            self._abandon_gesture()
            self.error.emit(f"Rendering the layer failed: {message}")

    def _on_job_cancelled(self, job_id: int) -> None:
        g = self._gesture
        if g is not None and g.in_flight is not None and g.in_flight[0] in (job_id, -1):
            g.in_flight = None
            self._request()

    def _maybe_commit(self) -> None:
        g = self._gesture
        if g is None or g.dragging or g.in_flight is not None:
            return
        if g.rendered is None or g.rendered[0] is not g.target:
            self._request()
            return
        self._gesture = None
        state, pixels = g.rendered
        if g.before[0].same_picture(state) and g.before[0].seed == state.seed:
            self.doc.preview_pixels(g.layer_id, g.before[1])  # back where it started: nothing to record
        elif g.rename is not None and g.rename != self.doc.layer(g.layer_id).name:
            self.doc.undo_stack.beginMacro(g.text)
            self.doc.set_latent(g.layer_id, state, pixels, text=g.text, before=g.before)
            self.doc.rename_layer(g.layer_id, g.rename)
            self.doc.undo_stack.endMacro()
        else:
            self.doc.set_latent(g.layer_id, state, pixels, text=g.text, before=g.before)
        self.bind()

    def _abandon_gesture(self) -> None:
        """Drop an unfinished gesture, restoring the pixels it previewed."""
        g, self._gesture = self._gesture, None
        if g is None:
            return
        if self.doc.find(g.layer_id) is not None and g.rendered is not None:
            self.doc.preview_pixels(g.layer_id, g.before[1])
        self.bind()
