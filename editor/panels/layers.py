"""Layers panel (view only): a list with thumbnails (top layer first), visibility checkboxes, rename by
double-click, reorder by drag, a blend mode box, an opacity slider and add / delete / duplicate / move buttons.

It emits requests; ``LayersController`` turns them into document commands and calls ``set_layers`` back."""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QIcon, QKeyEvent, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from editor.icons import icon
from editor.panels.wheel import wheel_needs_focus
from ganmodels.blending import BLEND_MODES, blend_label

ID_ROLE = Qt.ItemDataRole.UserRole
BLEND_GESTURE_PAUSE_MS = 800  # blend modes chosen closer together than this are one undo step
THUMB = 40


@dataclasses.dataclass(frozen=True)
class LayerRow:
    """What the panel shows of one layer."""

    id: str
    name: str
    visible: bool
    opacity: float
    kind: str
    tooltip: str = ""
    blend: str = "normal"


class _LayerList(QListWidget):
    """A list whose drops report the new top-to-bottom order of ids."""

    order_dropped = Signal(list)
    delete_pressed = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and event.modifiers() in (
            Qt.KeyboardModifier.NoModifier,
            Qt.KeyboardModifier.KeypadModifier,
        ):
            self.delete_pressed.emit()
            event.accept()
            return
        super().keyPressEvent(event)

    def dropEvent(self, event) -> None:
        super().dropEvent(event)
        ids = [self.item(i).data(ID_ROLE) for i in range(self.count())]
        self.order_dropped.emit(ids)


class LayersPanel(QWidget):
    add_requested = Signal()
    delete_requested = Signal(str)
    duplicate_requested = Signal(str)
    move_requested = Signal(str, int)  # id, +1 = up one, -1 = down one
    order_requested = Signal(list)  # ids, top first, after a drag
    rename_requested = Signal(str, str)
    visibility_requested = Signal(str, bool)
    opacity_requested = Signal(str, float, object)  # id, opacity, gesture token (None = single step)
    blend_requested = Signal(str, str, object)  # id, blend mode, gesture token (modes tried in a row: one step)
    active_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("layers-panel")
        self._rows: list[LayerRow] = []
        self._updating = False
        self._gesture: object | None = None

        self.list = _LayerList()
        self.list.setObjectName("layer-list")
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.list.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.list.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.list.setUniformItemSizes(True)
        self.list.currentItemChanged.connect(self._on_current)
        self.list.itemChanged.connect(self._on_item_changed)
        self.list.order_dropped.connect(self.order_requested)
        self.list.delete_pressed.connect(lambda: self._emit_for_current(self.delete_requested))
        self.list.setToolTip("Layers, top first: click to select, double-click or F2 to rename, drag to reorder, "
                             "the box shows or hides, Delete removes")  # fmt: skip

        self.blend = QComboBox()
        self.blend.setObjectName("layer-blend")
        for mode in BLEND_MODES:
            self.blend.addItem(blend_label(mode), mode)
        self.blend.setToolTip("Blend mode of the selected layer: how it mixes with the layers below")
        self.blend.activated.connect(self._on_blend)
        wheel_needs_focus(self.blend)
        # Modes tried one after another (arrow keys, wheel) are one undo step: a new one starts after a pause.
        self._blend_gesture: object | None = None
        self._blend_timer = QTimer(self)
        self._blend_timer.setSingleShot(True)
        self._blend_timer.setInterval(BLEND_GESTURE_PAUSE_MS)
        self._blend_timer.timeout.connect(self._end_blend_gesture)

        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setObjectName("layer-opacity")
        self.opacity.setRange(0, 100)
        self.opacity.setToolTip("Opacity of the selected layer")
        self.opacity_spin = QSpinBox()
        self.opacity_spin.setRange(0, 100)
        self.opacity_spin.setSuffix(" %")
        self.opacity_spin.setKeyboardTracking(False)  # a typed value is one change when Enter or Tab ends it
        self.opacity_spin.setToolTip("Opacity of the selected layer")
        self.opacity.valueChanged.connect(self._on_opacity)
        self.opacity_spin.valueChanged.connect(self._on_opacity_spin)
        self.opacity.sliderPressed.connect(self._begin_gesture)
        self.opacity.sliderReleased.connect(self._end_gesture)

        self.add_button = self._button("layer-add", "New raster layer", self.add_requested.emit)
        self.duplicate_button = self._button(
            "layer-duplicate", "Duplicate layer", lambda: self._emit_for_current(self.duplicate_requested)
        )
        self.up_button = self._button("arrow-up", "Move layer up", lambda: self._emit_move(+1))
        self.down_button = self._button("arrow-down", "Move layer down", lambda: self._emit_move(-1))
        self.delete_button = self._button(
            "layer-delete", "Delete layer", lambda: self._emit_for_current(self.delete_requested)
        )

        blend_row = QHBoxLayout()
        blend_row.addWidget(QLabel("Blend"))
        blend_row.addWidget(self.blend, 1)
        opacity_row = QHBoxLayout()
        opacity_row.addWidget(QLabel("Opacity"))
        opacity_row.addWidget(self.opacity, 1)
        opacity_row.addWidget(self.opacity_spin)
        buttons = QHBoxLayout()
        for b in (self.add_button, self.duplicate_button, self.up_button, self.down_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.delete_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(blend_row)
        layout.addLayout(opacity_row)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self._sync_controls()

    def _button(self, icon_name: str, tip: str, slot) -> QToolButton:
        b = QToolButton()
        b.setIcon(icon(icon_name))
        b.setToolTip(tip)
        b.setAutoRaise(True)
        b.clicked.connect(slot)
        return b

    # ----------------------------------------------------------------------------------------------------------
    # Called by the controller

    def set_layers(self, rows: list[LayerRow], active_id: str) -> None:
        """Show layers (bottom first in ``rows``; the list shows the top first). Items are updated in place when
        only their properties changed, so an ongoing edit (opacity drag, rename) is not disturbed."""
        self._updating = True
        self.list.blockSignals(True)
        try:
            same_order = [r.id for r in reversed(rows)] == self.row_ids()
            self._rows = list(rows)
            if not same_order:
                self.list.clear()
                for _ in rows:
                    item = QListWidgetItem()
                    item.setFlags(
                        Qt.ItemFlag.ItemIsEnabled
                        | Qt.ItemFlag.ItemIsSelectable
                        | Qt.ItemFlag.ItemIsEditable
                        | Qt.ItemFlag.ItemIsUserCheckable
                        | Qt.ItemFlag.ItemIsDragEnabled
                    )
                    self.list.addItem(item)
            for i, row in enumerate(reversed(rows)):
                item = self.list.item(i)
                item.setData(ID_ROLE, row.id)
                if item.text() != row.name:
                    item.setText(row.name)
                state = Qt.CheckState.Checked if row.visible else Qt.CheckState.Unchecked
                if item.checkState() != state:
                    item.setCheckState(state)
                item.setToolTip(row.tooltip)
                font = item.font()
                font.setBold(row.kind == "gan")
                item.setFont(font)
                if row.id == active_id and self.list.currentItem() is not item:
                    self.list.setCurrentItem(item)
            if not active_id:
                self.list.setCurrentItem(None)
        finally:
            self.list.blockSignals(False)
            self._updating = False
        self._sync_controls()

    def set_thumbnail(self, layer_id: str, pixmap: QPixmap) -> None:
        """Show a layer's preview icon."""
        item = self._item(layer_id)
        if item is not None:
            self._updating = True
            ic = QIcon(pixmap)
            ic.addPixmap(pixmap, QIcon.Mode.Selected)  # true colours on the selected row (no highlight tint)
            item.setIcon(ic)
            self._updating = False

    def set_active(self, layer_id: str) -> None:
        """Select a layer in the list without emitting."""
        item = self._item(layer_id)
        self.list.blockSignals(True)
        self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        self._sync_controls()

    def edit_current_name(self) -> None:
        """Start renaming the selected layer in place (Layer > Rename, F2)."""
        item = self.list.currentItem()
        if item is not None:
            self.list.setFocus()
            self.list.editItem(item)

    def current_id(self) -> str:
        """Id of the selected layer ("" if none)."""
        item = self.list.currentItem()
        return item.data(ID_ROLE) if item is not None else ""

    def row_ids(self) -> list[str]:
        """Ids as shown, top first."""
        return [self.list.item(i).data(ID_ROLE) for i in range(self.list.count())]

    # ----------------------------------------------------------------------------------------------------------

    def _item(self, layer_id: str) -> QListWidgetItem | None:
        for i in range(self.list.count()):
            if self.list.item(i).data(ID_ROLE) == layer_id:
                return self.list.item(i)
        return None

    def _row(self, layer_id: str) -> LayerRow | None:
        return next((r for r in self._rows if r.id == layer_id), None)

    def _sync_controls(self) -> None:
        row = self._row(self.current_id())
        has = row is not None
        for w in (self.blend, self.opacity, self.opacity_spin, self.duplicate_button, self.delete_button):
            w.setEnabled(has)
        ids = self.row_ids()
        self.up_button.setEnabled(has and ids.index(row.id) > 0)
        self.down_button.setEnabled(has and ids.index(row.id) < len(ids) - 1)
        if has and self._gesture is None:
            self._set_opacity_widgets(round(row.opacity * 100))
        if has:
            self.blend.setCurrentIndex(max(self.blend.findData(row.blend), 0))

    def _set_opacity_widgets(self, value: int) -> None:
        for w in (self.opacity, self.opacity_spin):
            w.blockSignals(True)
            w.setValue(value)
            w.blockSignals(False)

    def _on_current(self, current: QListWidgetItem | None, _previous) -> None:
        self._sync_controls()
        if not self._updating and current is not None:
            self.active_requested.emit(current.data(ID_ROLE))

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        if self._updating:
            return
        row = self._row(item.data(ID_ROLE))
        if row is None:
            return
        visible = item.checkState() == Qt.CheckState.Checked
        name = item.text().strip()
        if visible != row.visible:
            self.visibility_requested.emit(row.id, visible)
        elif name != row.name:
            if name:
                self.rename_requested.emit(row.id, name)
            else:  # blank names are refused: show the old one again
                self._updating = True
                item.setText(row.name)
                self._updating = False

    def _emit_for_current(self, signal) -> None:
        layer_id = self.current_id()
        if layer_id:
            signal.emit(layer_id)

    def _emit_move(self, delta: int) -> None:
        layer_id = self.current_id()
        if layer_id:
            self.move_requested.emit(layer_id, delta)

    def _begin_gesture(self) -> None:
        self._gesture = object()

    def _end_gesture(self) -> None:
        self._gesture = None

    def _on_opacity(self, value: int) -> None:
        self.opacity_spin.blockSignals(True)
        self.opacity_spin.setValue(value)
        self.opacity_spin.blockSignals(False)
        layer_id = self.current_id()
        if layer_id:
            self.opacity_requested.emit(layer_id, value / 100.0, self._gesture)

    def _on_blend(self, index: int) -> None:
        layer_id = self.current_id()
        if layer_id:
            if self._blend_gesture is None:
                self._blend_gesture = object()
            self._blend_timer.start()
            self.blend_requested.emit(layer_id, self.blend.itemData(index), self._blend_gesture)

    def _end_blend_gesture(self) -> None:
        self._blend_gesture = None

    def _on_opacity_spin(self, value: int) -> None:
        self.opacity.setValue(value)
