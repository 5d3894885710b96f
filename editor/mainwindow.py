"""The main window: lays out the canvas, docks, menus, toolbars and status bar, and wires them to the
controllers. Dialogs (file choosers, message boxes) live here; the flows themselves are in the controllers."""

from __future__ import annotations

import contextlib
import html
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from PySide6.QtCore import QEvent, QMimeData, QObject, QPointF, QSize, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QColor, QImage, QKeyEvent, QKeySequence, QPixmap, QShowEvent
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QColorDialog,
    QDockWidget,
    QFileDialog,
    QFrame,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QScrollArea,
    QSlider,
    QSpinBox,
    QStyle,
    QTextEdit,
    QToolBar,
    QToolButton,
    QWidget,
)

from editor import __version__
from editor.autosave import Autosaver, RecoveryChoice, RecoveryFile, find_recoverable
from editor.brush import MAX_SIZE, MIN_SIZE, BrushSettings
from editor.canvas import CanvasView
from editor.controllers.canvas import CanvasController
from editor.controllers.editor import (
    DEFAULT_INPAINT_TUNE_STEPS,
    DEFAULT_PTI_STEPS,
    DEFAULT_SIZE,
    EditorController,
)
from editor.controllers.jobs import JobsController
from editor.controllers.latent import LatentController
from editor.controllers.layers import LayersController
from editor.dialogs import NewDocumentDialog, PivotalTuningDialog, ResizeImageDialog, SampleDialog, ask_recovery
from editor.document import BlendMergeError, Document
from editor.fileio import (
    IMAGE_FILTER,
    IMAGE_SUFFIXES,
    MAX_DOCUMENT_PIXELS,
    MODEL_FILTER,
    MODEL_SUFFIXES,
    PNG_FILTER,
    safe_file_stem,
)
from editor.icons import icon
from editor.jobs import JobRunner
from editor.panels.history import HistoryPanel
from editor.panels.jobs import JobsPanel
from editor.panels.latent import LatentPanel
from editor.panels.layers import LayersPanel
from editor.panels.model import ModelPanel
from editor.qtimage import qimage_to_rgba, rgba_to_qimage
from editor.raster import Rect, centered_square, mask_bounds
from editor.session import ModelSession
from editor.settings import Settings
from ganmodels.inpainting import METHOD_TIPS, available_methods, method_label
from ganmodels.networks import class_probs

APP_NAME = "GAN Editor"
log = logging.getLogger(__name__)


def _fill(menu_or_bar, actions: list[QAction | None]) -> None:
    """Add actions to a menu or toolbar; None adds a separator."""
    for action in actions:
        if action is None:
            menu_or_bar.addSeparator()
        else:
            menu_or_bar.addAction(action)


# Generate > Inpaint Mask With (and the Inpaint button's arrow): the model's methods first; None: a separator.
INPAINT_MENU_ORDER = ("gan-inversion", "gan-inversion+pti", "gan-inpainter", None, "telea", "ns", "fsr-fast",
                      "fsr-best")  # fmt: skip

# Keys and gestures of the canvas that are not menu commands (Help > Keyboard Shortcuts).
CANVAS_KEYS = [
    ("Pan", "Space + drag, middle drag, scroll wheel"),
    ("Zoom at the pointer", "Ctrl + wheel"),
    ("Paint the mask / erase with the brush", "Left drag (B / E picks)"),
    ("Delete the selected layer", "Delete (Layers panel)"),
    ("Move a latent slider that has the focus", "arrow keys, Page Up / Page Down"),
]


class MainWindow(QMainWindow):
    """One document, one model, one job runner."""

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        runner: JobRunner | None = None,
        device: torch.device | str = "cpu",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("main-window")
        self.setWindowIcon(icon("app"))
        self.settings = settings if settings is not None else Settings()
        self.ask_before_discarding = True  # tests turn the "discard changes?" question off
        self.worker_stuck = False  # set when closing could not stop a background job
        self._shown_once = False
        self._layout_restored = False
        self._card_fitted = False  # the Model panel was sized to the first model card
        self._held_errors: list[tuple[str, str]] = []  # warnings that came while a file was read or written

        # Models
        self.runner = runner if runner is not None else JobRunner(self)
        self._owns_runner = runner is None
        self.doc = Document(DEFAULT_SIZE, DEFAULT_SIZE, self)
        self.session = ModelSession(self.runner.models, device=device, threads=self.runner.torch_threads, parent=self)
        self.brush = BrushSettings(size=self.settings.brush_size, hardness=self.settings.brush_hardness, parent=self)

        # Views
        self.canvas = CanvasView()
        self.setCentralWidget(self.canvas)
        self.layers_panel = LayersPanel()
        self.latent_panel = LatentPanel()
        self.model_panel = ModelPanel()
        self.jobs_panel = JobsPanel()
        self.history_panel = HistoryPanel(self.doc.undo_stack)
        self.docks: dict[str, QDockWidget] = {}
        self._add_dock("Layers", self.layers_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self._add_dock("Latent", self.latent_panel, Qt.DockWidgetArea.RightDockWidgetArea, scroll=True)
        self._add_dock("Model", self.model_panel, Qt.DockWidgetArea.LeftDockWidgetArea, scroll=True)
        self._add_dock("History", self.history_panel, Qt.DockWidgetArea.LeftDockWidgetArea)
        self._add_dock("Jobs", self.jobs_panel, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.resizeDocks([self.docks["Model"]], [250], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["Layers"]], [300], Qt.Orientation.Horizontal)

        # Controllers
        self.editor = EditorController(self.doc, self.runner, self.session, self)
        self.editor.confirm_downscale = self.confirm_downscale
        self.canvas_controller = CanvasController(self.doc, self.canvas, self.brush, self)
        if self.settings.mask_color is not None:
            self.canvas_controller.set_mask_tint(self.settings.mask_color)
        self.layers_controller = LayersController(self.doc, self.layers_panel, self)
        self.latent_controller = LatentController(self.doc, self.runner, self.session, self.latent_panel, self)
        self.jobs_controller = JobsController(self.runner, self.jobs_panel, self)
        self.autosave = Autosaver(
            self.doc, self.settings.recovery_folder, interval=self.settings.autosave_interval, parent=self
        )
        self.autosave.failed.connect(self.show_status)

        self._create_actions()
        self._create_menus()
        self._create_toolbars()
        self._create_status_bar()
        self._connect()
        self.editor.new_document()
        self._on_model_changed()
        self._update_title()
        self._restore_layout()
        app = QApplication.instance()
        self._watching_focus = isinstance(app, QApplication)
        self._close_when_idle = False  # a close asked for while a file was being read or written
        if isinstance(app, QApplication):  # Space pans over the canvas wherever the keyboard focus is
            app.focusChanged.connect(self._watch_focus)

    # ----------------------------------------------------------------------------------------------------------
    # Construction

    def _watch_focus(self, old: QWidget | None, new: QWidget | None) -> None:
        """Only the widget with the keyboard focus is watched for Space (see eventFilter); no filter sees the
        canvas's own stream of mouse events."""
        if old is not None:
            with contextlib.suppress(RuntimeError):  # (already deleted)
                old.removeEventFilter(self)
        if (
            new is not None
            and new is not self.canvas
            and new.window() is self
            and not isinstance(new, (QLineEdit, QAbstractSpinBox, QTextEdit, QPlainTextEdit))
        ):
            new.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        """Space with the pointer over the canvas starts panning, as in other painting programs, even while a
        panel has the keyboard focus (where Space would toggle a layer's visibility or press a button); text
        fields keep their spaces (they are not watched)."""
        if (
            event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() == Qt.Key.Key_Space
            and not event.isAutoRepeat()
            and event.modifiers() == Qt.KeyboardModifier.NoModifier
            and self.canvas.is_hovered()
        ):
            self.canvas.start_space_pan()
            return True
        return super().eventFilter(obj, event)

    def _add_dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea, *, scroll: bool = False) -> QDockWidget:
        """A panel; ``scroll`` puts a tall one in a scroll area so the window fits small screens."""
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title.lower()}")
        if scroll:
            area_widget = QScrollArea()
            area_widget.setWidgetResizable(True)
            area_widget.setFrameShape(QFrame.Shape.NoFrame)
            area_widget.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            area_widget.setWidget(widget)
            bar = area_widget.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
            area_widget.setMinimumSize(widget.minimumSizeHint().width() + bar, 80)  # (only the height scrolls)
            dock.setWidget(area_widget)
        else:
            dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.addDockWidget(area, dock)
        self.docks[title] = dock
        return dock

    def _action(self, text: str, slot, *, shortcut=None, icon_name: str = "", tip: str = "", checkable=False):
        action = QAction(text, self)
        if icon_name:
            action.setIcon(icon(icon_name))
        if shortcut is not None:
            if isinstance(shortcut, list):
                action.setShortcuts(shortcut)
            else:
                action.setShortcut(shortcut)
        if tip:
            action.setStatusTip(tip)
        keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        label = tip or text.replace("&", "").rstrip("…")
        action.setToolTip(f"{label} ({keys})" if keys and not label.endswith(")") else label)
        action.setCheckable(checkable)
        if checkable:
            action.toggled.connect(slot)
        else:
            action.triggered.connect(lambda _checked=False: slot())
        self.addAction(action)
        return action

    def _create_actions(self) -> None:
        K = QKeySequence
        a = self._action
        self.act_new = a(
            "&New…", self.new_document, shortcut=K.StandardKey.New, icon_name="new-document", tip="Start a new image"
        )
        self.act_open = a(
            "&Open Image…",
            self.choose_image,
            shortcut=K.StandardKey.Open,
            icon_name="open-image",
            tip="Open a picture (PNG, JPEG, WebP, TIFF, BMP)",
        )
        self.act_import = a(
            "&Import Image as Layer…",
            self.choose_import,
            shortcut=K("Ctrl+Shift+O"),
            tip="Add a picture as a new layer",
        )
        self.act_open_model = a(
            "Open &Model…",
            self.choose_model,
            shortcut=K("Ctrl+Shift+M"),
            icon_name="open-model",
            tip="Load a GAN model (.safetensors, NVIDIA .pkl, .pt), or add a direction file to the loaded one",
        )
        self.act_export = a(
            "&Export PNG…",
            lambda: self.choose_export("flattened"),
            shortcut=K("Ctrl+E"),
            icon_name="export",
            tip="Save the flattened image as PNG, with latent metadata",
        )
        self.act_export_layer = a(
            "Export &Layer as PNG…",
            lambda: self.choose_export("layer"),
            shortcut=K("Ctrl+Shift+E"),
            tip="Save the selected layer as PNG",
        )
        self.act_quit = a("&Quit", self.close, shortcut=K.StandardKey.Quit, icon_name="quit")

        stack = self.doc.undo_stack
        self.act_undo = stack.createUndoAction(self, "&Undo")
        self.act_undo.setShortcut(K("Ctrl+Z"))
        self.act_undo.setIcon(icon("undo"))
        self.act_redo = stack.createRedoAction(self, "&Redo")
        self.act_redo.setShortcuts([K("Ctrl+Shift+Z"), K("Ctrl+Y")])
        self.act_redo.setIcon(icon("redo"))
        self.addAction(self.act_undo)
        self.addAction(self.act_redo)
        self.act_copy = a(
            "&Copy Layer",
            lambda: self.copy_image("layer"),
            shortcut=K.StandardKey.Copy,
            tip="Copy the selected layer's picture to the clipboard",
        )
        self.act_copy_merged = a(
            "Copy &Merged",
            lambda: self.copy_image("merged"),
            shortcut=K("Ctrl+Shift+C"),
            tip="Copy the picture as shown (the visible layers) to the clipboard",
        )
        self.act_paste = a(
            "&Paste as New Layer",
            self.paste,
            shortcut=K.StandardKey.Paste,
            tip="Add the clipboard's picture (or picture files) as a new layer",
        )
        self.act_clear_mask = a(
            "&Clear Mask",
            self.editor.clear_mask,
            shortcut=K("Shift+Del"),
            icon_name="mask-clear",
            tip="Remove the mask of the selected layer",
        )
        self.act_invert_mask = a(
            "&Invert Mask",
            self.editor.invert_mask,
            shortcut=K("Ctrl+I"),
            icon_name="mask-invert",
            tip="Swap masked and unmasked areas",
        )

        self.act_paint = a(
            "&Paint Mask",
            lambda on: on and self.brush.set_erase(False),
            shortcut=K("B"),
            icon_name="brush",
            tip="Brush: paint the mask",
            checkable=True,
        )
        self.act_erase = a(
            "&Erase Mask",
            lambda on: on and self.brush.set_erase(True),
            shortcut=K("E"),
            icon_name="eraser",
            tip="Brush: erase the mask",
            checkable=True,
        )
        self.act_bigger = a("&Bigger Brush", self.brush.bigger, shortcut=K("]"))
        self.act_smaller = a("&Smaller Brush", self.brush.smaller, shortcut=K("["))
        self.act_harder = a("&Harder Brush", self.brush.harder, shortcut=K("}"), tip="Harder edge (Shift+])")
        self.act_softer = a("S&ofter Brush", self.brush.softer, shortcut=K("{"), tip="Softer edge (Shift+[)")

        self.act_sample = a(
            "&New Sample from Seed…",
            self.choose_sample,
            shortcut=K("Ctrl+G"),
            icon_name="generate",
            tip="Add a GAN layer generated from a seed",
        )
        self.act_random_sample = a(
            "New &Random Sample",
            self.random_sample,
            shortcut=K("Ctrl+Shift+G"),
            icon_name="dice",
            tip="Add a GAN layer from a random seed",
        )

        self.act_zoom_in = a("Zoom &In", self.canvas.zoom_in, shortcut=[K("Ctrl++"), K("Ctrl+=")], icon_name="zoom-in")
        self.act_zoom_out = a("Zoom &Out", self.canvas.zoom_out, shortcut=K("Ctrl+-"), icon_name="zoom-out")
        self.act_zoom_fit = a("Zoom to &Fit", self.canvas.zoom_to_fit, shortcut=K("Ctrl+0"), icon_name="zoom-fit")
        self.act_zoom_100 = a("&Actual Pixels (100%)", self.canvas.zoom_100, shortcut=K("Ctrl+1"), icon_name="zoom-100")
        self.act_show_mask = a(
            "Show &Mask",
            self.canvas.set_mask_visible,
            shortcut=K("Ctrl+H"),
            checkable=True,
            tip="Show the selected layer's mask as a tint (View > Mask Colour picks it)",
        )
        self.act_show_mask.setChecked(True)
        self.act_mask_color = a("Mask &Colour…", self.choose_mask_color, tip="Colour of the mask overlay")
        self.act_about = a("&About GAN Editor", self.show_about)
        self.act_invert = a(
            "&Invert Picture into GAN Layer",
            lambda: self.editor.invert_image(),
            shortcut=K("Ctrl+Shift+I"),
            tip="Find the latent that reproduces the picture (masked pixels are ignored) and add it as a GAN layer",
        )
        self.act_invert_pti = a(
            "Invert with &Pivotal Tuning…",
            self.choose_pti_invert,
            tip="Invert the picture, then fine-tune a copy of the generator for the new layer (slower, more faithful)",
        )

        def inpaint_action(key: str, method: str, text: str, tip: str, **kw) -> QAction:
            def run() -> None:
                self.settings.inpaint_method = key  # the toolbar's Inpaint button runs it next
                self._update_inpaint_action()
                self.editor.inpaint(method, **kw)

            return a(text, run, tip=tip)

        self.inpaint_actions = {
            m: inpaint_action(m, m, method_label(m), METHOD_TIPS.get(m, "")) for m in available_methods()
        }
        self.inpaint_actions["gan-inversion+pti"] = inpaint_action(
            "gan-inversion+pti",
            "gan-inversion",
            f"{method_label('gan-inversion')} + Pivotal Tuning",
            "Invert the surroundings, fine-tune a copy of the generator on them, then fill (slower, more faithful)",
            tune_steps=DEFAULT_INPAINT_TUNE_STEPS,
        )
        self.act_inpaint = a("Inpaint &Mask", self.inpaint_with_chosen_method, shortcut=K("Ctrl+Shift+F"),
                             icon_name="inpaint")  # fmt: skip
        self.act_inpaint.setIconText("Inpaint")
        self.act_save_project = a(
            "&Save Project",
            self.save_project,
            shortcut=K.StandardKey.Save,
            tip="Save layers, masks and latents (.ora)",
        )
        self.act_save_project_as = a(
            "Save Project &As…",
            self.save_project_as,
            shortcut=K.StandardKey.SaveAs,
            tip="Save the project to another file (.ora)",
        )
        self.act_open_project = a("Open &Project…", self.open_project_dialog, tip="Open an OpenRaster project (.ora)")

        layers = self.layers_controller
        self.act_layer_new = a(
            "&New Layer", layers.add_layer, shortcut=K("Ctrl+Shift+N"), icon_name="layer-add",
            tip="Add a transparent raster layer above the selected one",
        )  # fmt: skip
        self.act_layer_duplicate = a(
            "&Duplicate Layer", lambda: self._on_active_layer(self.doc.duplicate_layer), shortcut=K("Ctrl+J"),
            icon_name="layer-duplicate", tip="Copy the selected layer above itself",
        )  # fmt: skip
        self.act_layer_delete = a(
            "De&lete Layer", lambda: self._on_active_layer(self.doc.delete_layer), icon_name="layer-delete",
            tip="Remove the selected layer (Delete in the Layers panel)",
        )  # fmt: skip
        self.act_layer_rename = a("&Rename Layer…", self.layers_panel.edit_current_name, shortcut=K("F2"))
        self.act_layer_up = a(
            "Move Layer &Up", lambda: self._on_active_layer(lambda i: layers.move_by(i, +1)), shortcut=K("Ctrl+]"),
            icon_name="arrow-up",
        )  # fmt: skip
        self.act_layer_down = a(
            "Move Layer Do&wn", lambda: self._on_active_layer(lambda i: layers.move_by(i, -1)), shortcut=K("Ctrl+["),
            icon_name="arrow-down",
        )  # fmt: skip
        self.act_merge_down = a(
            "&Merge Down", lambda: self._on_active_layer(self.doc.merge_down), shortcut=K("Ctrl+M"),
            tip="Merge the selected layer into the one below (a GAN layer merged becomes a raster layer)",
        )  # fmt: skip
        self.act_crop_mask = a(
            "&Crop to Mask", self.crop_to_mask,
            tip="Cut the picture to the box around the selected layer's mask (every layer; GAN layers stay editable)",
        )  # fmt: skip
        self.act_crop_square = a(
            "Crop to Centred &Square", self.crop_to_square,
            tip="Cut the picture to its centred square: the part Invert reads",
        )  # fmt: skip
        self.act_resize_image = a(
            "&Resize Image…", self.resize_image_dialog, shortcut=K("Ctrl+Alt+I"),
            tip="Scale every layer and mask to another size (GAN layers stay editable)",
        )  # fmt: skip
        self.act_flatten = a(
            "&Flatten Image", lambda: self._layer_op(self.doc.flatten_layers),
            tip="Replace all layers by one raster layer of the visible picture (hidden layers are dropped)",
        )  # fmt: skip
        self.act_shortcuts = a("&Keyboard Shortcuts", self.show_shortcuts, shortcut=K("Ctrl+/"))

    def _create_menus(self) -> None:
        mb = self.menuBar()
        file_menu = mb.addMenu("&File")
        _fill(file_menu, [self.act_new, self.act_open, self.act_open_project])
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        _fill(file_menu, [self.act_import, self.act_open_model, None, self.act_save_project,
                          self.act_save_project_as, self.act_export, self.act_export_layer, None,
                          self.act_quit])  # fmt: skip
        _fill(mb.addMenu("&Edit"), [self.act_undo, self.act_redo, None, self.act_copy, self.act_copy_merged,
                                    self.act_paste, None, self.act_clear_mask, self.act_invert_mask])  # fmt: skip
        _fill(mb.addMenu("&Image"), [self.act_crop_mask, self.act_crop_square, None, self.act_resize_image])
        _fill(mb.addMenu("&Brush"), [self.act_paint, self.act_erase, None, self.act_bigger, self.act_smaller,
                                     self.act_harder, self.act_softer])  # fmt: skip
        _fill(mb.addMenu("&Layer"), [self.act_layer_new, self.act_layer_duplicate, self.act_layer_rename,
                                     self.act_layer_delete, None, self.act_layer_up, self.act_layer_down, None,
                                     self.act_merge_down, self.act_flatten])  # fmt: skip
        # The Invert and Inpaint flows (issue 6) add their actions to this menu; see EditorController.run_backend_job.
        self.generate_menu = mb.addMenu("&Generate")
        _fill(self.generate_menu, [self.act_sample, self.act_random_sample, None, self.act_invert,
                                   self.act_invert_pti, None])  # fmt: skip
        self.inpaint_menu = self.generate_menu.addMenu("Inpaint Mask &With")
        order = list(INPAINT_MENU_ORDER) + [m for m in self.inpaint_actions if m not in INPAINT_MENU_ORDER]
        _fill(self.inpaint_menu, [self.inpaint_actions[m] if m else None for m in order])
        self.generate_menu.addAction(self.act_inpaint)
        view = mb.addMenu("&View")
        _fill(view, [self.act_zoom_in, self.act_zoom_out, self.act_zoom_fit, self.act_zoom_100, None,
                     self.act_show_mask, self.act_mask_color, None])  # fmt: skip
        panels = view.addMenu("&Panels")
        for dock in self.docks.values():
            panels.addAction(dock.toggleViewAction())
        _fill(mb.addMenu("&Help"), [self.act_shortcuts, None, self.act_about])

    def _create_toolbars(self) -> None:
        tb = QToolBar("Main")
        tb.setObjectName("toolbar-main")
        tb.setIconSize(QSize(20, 20))
        tb.setMovable(False)
        self.addToolBar(tb)
        _fill(tb, [self.act_new, self.act_open, self.act_open_model, self.act_export, None, self.act_undo,
                   self.act_redo, None, self.act_sample, None, self.act_zoom_fit, self.act_zoom_100])  # fmt: skip

        bt = QToolBar("Brush")
        bt.setObjectName("toolbar-brush")
        bt.setIconSize(QSize(20, 20))
        self.addToolBar(bt)
        bt.addAction(self.act_paint)
        bt.addAction(self.act_erase)
        bt.addSeparator()
        bt.addWidget(QLabel(" Size "))
        self.size_box = QSpinBox()
        self.size_box.setObjectName("brush-size")
        self.size_box.setRange(int(MIN_SIZE), int(MAX_SIZE))
        self.size_box.setSuffix(" px")
        self.size_box.setToolTip("Brush diameter ([ and ] change it)")
        bt.addWidget(self.size_box)
        bt.addWidget(QLabel("  Hardness "))
        self.hardness_slider = QSlider(Qt.Orientation.Horizontal)
        self.hardness_slider.setObjectName("brush-hardness")
        self.hardness_slider.setRange(0, 100)
        self.hardness_slider.setFixedWidth(110)
        self.hardness_slider.setToolTip("Brush hardness: soft edge at 0, hard edge at 100 ({ and } change it)")
        bt.addWidget(self.hardness_slider)
        self.hardness_label = QLabel()
        self.hardness_label.setObjectName("brush-hardness-value")
        self.hardness_label.setMinimumWidth(self.hardness_label.fontMetrics().horizontalAdvance(" 100 %"))
        bt.addWidget(self.hardness_label)
        bt.addSeparator()
        bt.addAction(self.act_clear_mask)
        bt.addAction(self.act_invert_mask)
        bt.addSeparator()
        self.inpaint_button = QToolButton()  # runs the method used last; its arrow opens the list of methods
        self.inpaint_button.setObjectName("inpaint-button")
        self.inpaint_button.setDefaultAction(self.act_inpaint)
        self.inpaint_button.setMenu(self.inpaint_menu)
        self.inpaint_button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        self.inpaint_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        bt.addWidget(self.inpaint_button)

    def _create_status_bar(self) -> None:
        sb = self.statusBar()
        self.position_label = QLabel()
        self.zoom_label = QLabel()
        self.jobs_label = QLabel()
        self.timing_label = QLabel()
        self.device_label = QLabel()
        for w in (self.position_label, self.zoom_label, self.jobs_label, self.timing_label, self.device_label):
            sb.addPermanentWidget(w)
        self.device_label.setText(self.session.device_text)

    def _connect(self) -> None:
        self.editor.error.connect(self.show_error)
        self.editor.file_io_done.connect(self._show_held_errors)
        self.editor.status.connect(self.show_status)
        self.editor.preview_changed.connect(self.canvas_controller.show_preview)
        self.latent_controller.error.connect(self._on_render_error)
        self.jobs_controller.timing.connect(self._on_timing)
        self.jobs_controller.cancelled.connect(self.show_status)
        self.canvas.stroke_started.connect(self._show_mask_for_painting)
        self.runner.count_changed.connect(self._on_job_count)
        self.session.model_changed.connect(self._on_model_changed)
        self.session.directions_changed.connect(self._on_model_changed)
        self.model_panel.open_requested.connect(self.choose_model)
        self.latent_panel.new_sample_requested.connect(self.random_sample)
        self.canvas.zoom_changed.connect(self._on_zoom)
        self.canvas.cursor_moved.connect(self._on_cursor_moved)
        self.canvas.files_dropped.connect(self.open_paths)
        self.doc.undo_stack.cleanChanged.connect(self._update_title)
        self.doc.reset.connect(self._update_title)
        self.doc.resized.connect(self._update_title)
        self.doc.path_changed.connect(self._update_title)
        self.doc.active_changed.connect(self._update_actions)
        self.doc.layers_changed.connect(self._update_actions)
        self.doc.reset.connect(self._update_actions)

        self.brush.changed.connect(self._on_brush_changed)
        self.size_box.valueChanged.connect(self.brush.set_size)
        self.hardness_slider.valueChanged.connect(self._on_hardness)
        self._on_brush_changed()
        self._on_job_count(0)

    def _restore_layout(self) -> None:
        geometry, state = self.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1360, 860)
        self._layout_restored = state is not None and self.restoreState(state)

    # ----------------------------------------------------------------------------------------------------------
    # Reactions

    def _fit_model_dock(self) -> None:
        """Without a saved layout, the first model card is shown whole (the Model panel scrolls only on small
        screens); History and Jobs share the rest."""
        if self._layout_restored or self._card_fitted or not self.session.loaded or not self.isVisible():
            return
        self._card_fitted = True
        width = self.docks["Model"].widget().width()  # the scroll area's, which the card gets without a scroll bar
        layout = self.model_panel.layout()
        hfw = layout.hasHeightForWidth()
        card = layout.totalHeightForWidth(width) if hfw else self.model_panel.sizeHint().height()
        card += self.docks["Model"].height() - self.docks["Model"].widget().height() + 8  # + the title bar
        rest = max(180, self.docks["Model"].height() + self.docks["History"].height() + self.docks["Jobs"].height()
                   - card)  # fmt: skip
        self.resizeDocks([self.docks[n] for n in ("Model", "History", "Jobs")], [card, rest * 2 // 3, rest // 3],
                         Qt.Orientation.Vertical)  # fmt: skip

    def _on_model_changed(self) -> None:
        QTimer.singleShot(0, self._fit_model_dock)
        self.model_panel.show_card(self.session.card_info(), self.session.card_tips())
        loaded = self.session.loaded
        needs_model = [self.act_sample, self.act_random_sample, self.act_invert, self.act_invert_pti]
        needs_model += [act for m, act in self.inpaint_actions.items() if m.startswith("gan")]
        for act in needs_model:  # (classical inpainting works without a model)
            act.setEnabled(loaded)
        has_net = loaded and "inpainter" in (getattr(self.session.model, "components", None) or {})
        self.inpaint_actions["gan-inpainter"].setEnabled(has_net)
        self.inpaint_actions["gan-inpainter"].setStatusTip(
            METHOD_TIPS["gan-inpainter"] + ("" if has_net else " (this model has none: ganmodels train-inpainter)")
        )
        self._update_inpaint_action()
        tip = "" if loaded else " (open a model first)"
        self.act_sample.setStatusTip("Add a GAN layer generated from a seed" + tip)
        self.device_label.setText(self.session.device_text)

    def _chosen_inpaint_key(self) -> str:
        key = self.settings.inpaint_method
        return key if key in self.inpaint_actions else "gan-inversion"

    def _update_inpaint_action(self) -> None:
        """The Inpaint button names the method it runs and can run only when that method can."""
        chosen = self.inpaint_actions[self._chosen_inpaint_key()]
        keys = self.act_inpaint.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        self.act_inpaint.setText(f"Inpaint &Mask ({chosen.text()})")
        self.act_inpaint.setToolTip(f"Fill the mask with {chosen.text()} ({keys}); the arrow chooses another method")
        self.act_inpaint.setStatusTip(f"Fill the mask with {chosen.text()}: {chosen.statusTip()}")
        self.act_inpaint.setEnabled(chosen.isEnabled())

    def inpaint_with_chosen_method(self) -> None:
        """The Inpaint button and Ctrl+Shift+F: fill the mask with the method chosen last (GAN inversion at first)."""
        chosen = self.inpaint_actions[self._chosen_inpaint_key()]
        if chosen.isEnabled():
            chosen.trigger()

    def _on_brush_changed(self) -> None:
        b = self.brush
        self.act_paint.setChecked(not b.erase)
        self.act_erase.setChecked(b.erase)
        for w, v in ((self.size_box, round(b.size)), (self.hardness_slider, round(b.hardness * 100))):
            w.blockSignals(True)
            w.setValue(v)
            w.blockSignals(False)
        self.hardness_label.setText(f" {round(b.hardness * 100)} %")
        self.settings.brush_size = b.size
        self.settings.brush_hardness = b.hardness

    def _show_mask_for_painting(self, _pos: object) -> None:
        """Painting edits the mask: a hidden one is shown again, so the stroke is not made blind."""
        if not self.act_show_mask.isChecked():
            self.act_show_mask.setChecked(True)
            self.canvas.set_mask_visible(True)
            self.show_status("Mask shown again: painting edits it (Ctrl+H hides it)")

    def show_status(self, text: str) -> None:
        """A transient status-bar message."""
        self.statusBar().showMessage(text, 5000)

    def _on_render_error(self, message: str) -> None:
        self.show_error("Rendering failed", message)

    def _on_timing(self, text: str) -> None:
        self.timing_label.setText(f"Last job: {text}")

    def _on_zoom(self, zoom: float) -> None:
        self.zoom_label.setText(f"{zoom * 100:.0f} %")

    def _on_hardness(self, value: int) -> None:
        self.brush.set_hardness(value / 100.0)

    def _on_job_count(self, count: int) -> None:
        self.jobs_label.setText(f"{count} job{'s' if count != 1 else ''} running" if count else "")

    def _on_cursor_moved(self, pos: QPointF) -> None:
        w, h = self.doc.size
        x, y = int(pos.x() // 1), int(pos.y() // 1)
        inside = 0 <= x < w and 0 <= y < h
        self.position_label.setText(f"{x}, {y}" if inside else "")

    def _update_actions(self, *_args: object) -> None:
        active = self.doc.active_layer
        has_layer = active is not None
        for act in (self.act_clear_mask, self.act_invert_mask, self.act_export_layer, self.act_layer_duplicate,
                    self.act_layer_delete, self.act_layer_rename):  # fmt: skip
            act.setEnabled(has_layer)
        index = self.doc.index_of(active.id) if active is not None else -1
        self.act_layer_up.setEnabled(0 <= index < len(self.doc.layers) - 1)
        self.act_layer_down.setEnabled(index > 0)
        self.act_merge_down.setEnabled(index > 0)
        self.act_flatten.setEnabled(len(self.doc.layers) > 0)
        self.act_crop_mask.setEnabled(has_layer)
        self.act_crop_square.setEnabled(self.doc.width != self.doc.height)

    def _on_active_layer(self, op: Callable[[str], object]) -> None:
        """Run a Layer menu command on the selected layer."""
        layer_id = self.doc.active_id
        if layer_id:
            self._layer_op(lambda: op(layer_id))

    def _layer_op(self, op: Callable[[], object]) -> None:
        try:
            op()
        except BlendMergeError as e:
            self.show_error("Cannot merge these layers", str(e))
        except ValueError as e:
            self.show_status(f"Cannot do that: {e}.")

    def crop_to_mask(self) -> None:
        """Image > Crop to Mask: the box around the selected layer's mask becomes the picture (one undo step)."""
        layer = self.doc.active_layer
        if layer is None:
            return
        rect = mask_bounds(layer.mask)
        if rect.empty:
            self.show_status(f"{layer.name} has no mask: paint over the part to keep, then crop to it.")
            return
        self._crop(rect)

    def crop_to_square(self) -> None:
        """Image > Crop to Centred Square: keep the square Invert reads."""
        self._crop(centered_square(*self.doc.size))

    def _crop(self, rect: Rect) -> None:
        self.latent_panel.end_key_gestures()  # (a slider change made just now is kept)
        self.doc.crop(rect)
        self.show_status(f"Cropped to {rect.w} x {rect.h} (Undo puts the rest back)")

    def resize_image_dialog(self) -> None:
        """Image > Resize Image: ask for a size, then scale every layer and mask (one undo step)."""
        dialog = ResizeImageDialog(*self.doc.size, max_pixels=MAX_DOCUMENT_PIXELS, parent=self)
        try:
            accepted, (w, h) = dialog.exec(), dialog.values()
        finally:
            dialog.deleteLater()
        if accepted and (w, h) != self.doc.size:
            self.latent_panel.end_key_gestures()
            with self.busy(f"Resizing to {w} x {h}..."):
                done = self.editor.resize_image(w, h)
            if done:
                self.show_status(f"Resized to {w} x {h}")

    def choose_mask_color(self) -> None:
        """View > Mask Colour: a colour that stands out on the picture (remembered)."""
        r, g, b = self.canvas_controller.mask_tint
        color = QColorDialog.getColor(QColor(r, g, b), self, "Mask colour")
        if color.isValid():
            rgb = (color.red(), color.green(), color.blue())
            self.canvas_controller.set_mask_tint(rgb)
            self.settings.mask_color = rgb

    def show_shortcuts(self) -> None:
        """Help > Keyboard Shortcuts: every menu command with a key, and the canvas's own keys and gestures."""
        rows = []
        for menu in self.menuBar().findChildren(QMenu):
            for act in menu.actions():
                keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in act.shortcuts()]
                if keys and not act.menu():
                    rows.append((act.text().replace("&", "").rstrip("…"), ", ".join(keys)))
        rows += CANVAS_KEYS
        text = "".join(f"<tr><td>{html.escape(name)}</td><td>&nbsp;&nbsp;<b>{html.escape(keys)}</b></td></tr>"
                       for name, keys in rows)  # fmt: skip
        box = QMessageBox(QMessageBox.Icon.NoIcon, "Keyboard Shortcuts", f"<table>{text}</table>", parent=self)
        box.setTextFormat(Qt.TextFormat.RichText)
        try:
            box.exec()
        finally:
            box.deleteLater()

    def _update_title(self, *_args: object) -> None:
        name = self.doc.path.name if self.doc.path is not None else "Untitled"
        w, h = self.doc.size
        self.setWindowTitle(f"{name} ({w} x {h})[*] — {APP_NAME}")
        self.setWindowModified(not self.doc.undo_stack.isClean())

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            QTimer.singleShot(0, self._fit_model_dock)
            QTimer.singleShot(0, self.canvas.zoom_to_fit)
            self.canvas.setFocus()  # Space-pan and the brush keys work at once

    # ----------------------------------------------------------------------------------------------------------
    # User commands with dialogs

    def show_error(self, title: str, message: str) -> QMessageBox | None:
        """A non-blocking (window-modal) warning box. While a file is read or written it waits until that is done
        (None is returned): a box opened meanwhile would block the progress box's Cancel."""
        if self.editor.file_io_busy:
            self._held_errors.append((title, message))
            return None
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("error-box")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.open()
        self.statusBar().showMessage(f"{title}: {message}", 8000)
        return box

    def _show_held_errors(self) -> None:
        held, self._held_errors = self._held_errors, []
        for title, message in held:
            self.show_error(title, message)

    def confirm_discard(self) -> bool:
        """Ask before replacing a document that has unsaved changes: Save (then go on if it was saved), Discard or
        Cancel."""
        self.latent_panel.end_key_gestures()  # a slider change made just now counts as a change
        if not self.ask_before_discarding or self.doc.undo_stack.isClean():
            return True
        buttons = QMessageBox.StandardButton
        answer = QMessageBox.question(
            self,
            "Save changes?",
            "The current image has unsaved changes. Save them as a project first?",
            buttons.Save | buttons.Discard | buttons.Cancel,
            buttons.Save,
        )
        if answer == buttons.Save:  # (go on only if nothing changed while the file was written)
            return self.save_project() and self.doc.undo_stack.isClean()
        return answer == buttons.Discard

    def confirm_downscale(self, message: str) -> bool:
        """Offer to open a picture that is over the size limit at a smaller size."""
        waiting = QApplication.overrideCursor() is not None  # (asked from inside ``busy``)
        if waiting:
            QApplication.restoreOverrideCursor()
        try:
            answer = QMessageBox.question(
                self,
                "Picture too large",
                f"{message}.\n\nOpen it downscaled?",
                QMessageBox.StandardButton.Open | QMessageBox.StandardButton.Cancel,
                QMessageBox.StandardButton.Open,
            )
        finally:
            if waiting:
                QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        return answer == QMessageBox.StandardButton.Open

    @contextlib.contextmanager
    def busy(self, message: str) -> Iterator[None]:
        """A wait cursor and ``message`` in the status bar while a file is read or written (a 6000 x 4000 picture
        takes seconds; the file work itself runs off the GUI thread, see ``editor.offthread``). A close asked for
        meanwhile happens afterwards."""
        self.statusBar().showMessage(message)
        self.statusBar().repaint()
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        self.autosave.hold()
        try:
            yield
        finally:
            self.autosave.release()
            QApplication.restoreOverrideCursor()
            if self.statusBar().currentMessage() == message:
                self.statusBar().clearMessage()
            if self._close_when_idle and not self.editor.file_io_busy:
                self._close_when_idle = False
                QTimer.singleShot(0, self.close)

    def new_document(self) -> None:
        """File > New: ask for a size and background, then start over."""
        dialog = NewDocumentDialog(*self.doc.size, self)
        try:
            accepted, values = dialog.exec(), dialog.values()
        finally:
            dialog.deleteLater()  # (dialogs left alive under the window made the app abort at exit)
        if accepted and self.confirm_discard():
            self.editor.new_document(*values)

    def choose_image(self) -> None:
        """File > Open Image: pick a picture and open it as the document."""
        path, _ = QFileDialog.getOpenFileName(self, "Open image", self.settings.last_folder("image"), IMAGE_FILTER)
        if path:
            self.open_image(path)

    def open_image(self, path: str | Path) -> bool:
        """Open a picture as the document (asks before discarding changes)."""
        if not self.confirm_discard():
            return False
        with self.busy(f"Opening {Path(path).name}..."):
            ok = self.editor.open_image(path)
        if ok:
            self.settings.set_last_folder("image", path)
            self.settings.add_recent_file(path)
            self.canvas.zoom_to_fit()
        return ok

    def save_project(self) -> bool:
        """File > Save Project (Ctrl+S): to the project's own .ora file, or, for a document that has none yet (a new
        one, an opened picture), to a file the user chooses (Save Project As)."""
        if self.doc.path is not None and self.doc.path.suffix.lower() == ".ora" and not self.doc.keep_file:
            return self._save_project_to(self.doc.path)
        return self.save_project_as()

    def save_project_as(self) -> bool:
        """File > Save Project As: OpenRaster with our latents and masks, to a chosen file."""
        if self.doc.path is None:
            start = str(Path(self.settings.last_folder("project")) / "untitled.ora")
        elif self.doc.keep_file:  # (another program's file: not offered for overwriting)
            start = str(self.doc.path.with_name(f"{self.doc.path.stem}-edited.ora"))
        else:
            start = str(self.doc.path.with_suffix(".ora"))
        path, _ = QFileDialog.getSaveFileName(self, "Save project", start, "OpenRaster project (*.ora)")
        if not path:
            return False
        if not path.lower().endswith(".ora"):
            path += ".ora"
        return self._save_project_to(path)

    def _save_project_to(self, path: str | Path) -> bool:
        self.latent_panel.end_key_gestures()  # (a slider change made just now is saved too)
        with self.busy(f"Saving {Path(path).name}..."):
            ok = self.editor.save_project(path)
        if ok:
            self.settings.set_last_folder("project", path)
            self.settings.add_recent_file(path)
        return ok

    def open_project_dialog(self) -> None:
        """File > Open Project."""
        path, _ = QFileDialog.getOpenFileName(
            self, "Open project", self.settings.last_folder("project"), "OpenRaster project (*.ora)"
        )
        if path and self.confirm_discard() and self.open_project(path):
            self.settings.set_last_folder("project", path)
            self.canvas.zoom_to_fit()

    def open_project(self, path: str | Path) -> bool:
        """Open an .ora project (no questions asked; errors are shown)."""
        with self.busy(f"Opening {Path(path).name}..."):
            ok = self.editor.open_project(path)
        if ok:
            self.settings.add_recent_file(path)
            self.canvas.zoom_to_fit()
        return ok

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent_files()
        for path in recent:
            act = self.recent_menu.addAction(Path(path).name)
            act.setToolTip(path)
            act.setStatusTip(path)
            act.triggered.connect(lambda _checked=False, p=path: self.open_recent(p))
        if not recent:
            self.recent_menu.addAction("No recent files").setEnabled(False)

    def open_recent(self, path: str) -> bool:
        """File > Open Recent: a project or a picture opened or saved earlier."""
        if not Path(path).is_file():
            self.settings.remove_recent_file(path)
            self.show_error("Cannot open file", f"{path} is no longer there; it was removed from the recent files.")
            return False
        if path.lower().endswith(".ora"):
            return self.confirm_discard() and self.open_project(path)
        return self.open_image(path)

    def choose_import(self) -> None:
        """File > Import Image as Layer."""
        path, _ = QFileDialog.getOpenFileName(self, "Import image", self.settings.last_folder("image"), IMAGE_FILTER)
        if not path:
            return
        with self.busy(f"Importing {Path(path).name}..."):
            ok = self.editor.import_image(path)
        if ok:
            self.settings.set_last_folder("image", path)

    def copy_image(self, what: str) -> bool:
        """Edit > Copy Layer (``what="layer"``) / Copy Merged (``"merged"``): the pixels to the clipboard."""
        if what == "layer":
            layer = self.doc.active_layer
            if layer is None:
                self.show_status("Nothing to copy: select a layer")
                return False
            rgba, name = layer.pixels, f"the layer {layer.name}"
        elif what == "merged":
            rgba, name = self.doc.flatten(), "the picture"
        else:
            raise ValueError(f"what must be 'layer' or 'merged', got {what!r}")
        QApplication.clipboard().setImage(rgba_to_qimage(rgba))
        self.show_status(f"Copied {name} ({rgba.shape[1]} x {rgba.shape[0]})")
        return True

    def paste(self) -> bool:
        """Edit > Paste as New Layer: the clipboard's picture, or the pictures among its files."""
        return self.paste_from(QApplication.clipboard().mimeData())

    def paste_from(self, mime: QMimeData | None) -> bool:
        """Add a picture from clipboard data as a new layer (scaled down to fit the document); files are imported."""
        if mime is not None and mime.hasImage():
            data = mime.imageData()
            image = data if isinstance(data, QImage) else data.toImage() if isinstance(data, QPixmap) else QImage()
            if not image.isNull():
                size = (image.width(), image.height())
                w, h = self.doc.size
                if size[0] > w or size[1] > h:  # scaled by Qt first: a huge picture never becomes float32 here
                    keep, smooth = Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
                    image = image.scaled(w, h, keep, smooth)
                done = f"Pasted a {size[0]} x {size[1]} picture"
                self.editor.add_picture_layer(
                    qimage_to_rgba(image), name="Pasted", text="Paste", done=done, source_size=size
                )
                return True
        files = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()] if mime is not None and mime.hasUrls() else []
        images = [p for p in files if p.lower().endswith(IMAGE_SUFFIXES) and Path(p).is_file()]
        if not images:
            self.show_status("Nothing to paste: the clipboard holds no picture")
            return False
        added = [p for p in images if self.editor.import_image(p)]
        return bool(added)

    def choose_model(self) -> None:
        """File > Open Model: pick a model file."""
        path, _ = QFileDialog.getOpenFileName(self, "Open model", self.settings.last_folder("model"), MODEL_FILTER)
        if path:
            self.open_model(path)

    def open_model(self, path: str | Path) -> bool:
        """Load a model file (errors are shown); remembers its folder."""
        ok = self.editor.open_model(path)
        if ok:
            self.settings.set_last_folder("model", path)
        return ok

    def open_paths(self, paths: list[str]) -> None:
        """Dropped files: models are loaded; then a project, else the first picture, becomes the document (one at a
        time); what was not opened is named in the status bar, or in an error when nothing could be. (While a file
        is read or written, drops are dropped with the other input: ``editor.offthread``.)"""
        models = [p for p in paths if p.lower().endswith(MODEL_SUFFIXES) and Path(p).is_file()]
        for p in models:
            self.open_model(p)
        rest = [p for p in paths if p not in models]
        projects = [p for p in rest if p.lower().endswith(".ora") and Path(p).is_file()]
        images = [p for p in rest if p.lower().endswith(IMAGE_SUFFIXES) and Path(p).is_file()]
        target = projects[0] if projects else images[0] if images else None
        skipped = [Path(p).name for p in rest if p != target]
        if target is None:
            if skipped:
                first = Path(rest[0])
                why = "is a folder" if first.is_dir() else "is not a picture, project or model this editor opens"
                more = f" (nor are the other {len(skipped) - 1})" if len(skipped) > 1 else ""
                self.show_error("Cannot open file", f"{first.name} {why}{more}.")
            return
        if target in projects:
            opened = self.confirm_discard() and self.open_project(target)
        else:
            opened = self.open_image(target)  # (asks before discarding itself)
        if opened and skipped:
            self.show_status(
                f"Opened {Path(target).name}; not opened: {', '.join(skipped)} (one document at a time; "
                "File > Import Image as Layer adds a picture)"
            )

    def choose_export(self, what: str) -> None:
        """File > Export: the flattened image (``what="flattened"``) or the selected layer (``"layer"``)."""
        self.latent_panel.end_key_gestures()
        stem = self.doc.path.stem if self.doc.path is not None else "untitled"
        if what == "layer" and self.doc.active_layer is not None:
            stem = f"{stem}-{safe_file_stem(self.doc.active_layer.name)}"
        start = str(Path(self.settings.last_folder("export")) / f"{stem}.png")
        path, _ = QFileDialog.getSaveFileName(self, "Export PNG", start, PNG_FILTER)
        if not path:
            return
        if not path.lower().endswith(".png"):
            path += ".png"
        with self.busy(f"Exporting {Path(path).name}..."):
            ok = self.editor.export_png(path, what=what)
        if ok:  # (a PNG is not the project: the document stays unsaved)
            self.settings.set_last_folder("export", path)

    def choose_sample(self) -> None:
        """Generate > New Sample from Seed: ask for seed and truncation."""
        active = self.doc.active_layer
        session = self.editor.session
        model = session.model
        anchors = len(model.anchors) if model is not None and model.anchors is not None else 0
        near, truncation = True, session.default_truncation()
        if active is not None and active.gan is not None and (active.gan.anchor is None or anchors):
            near, truncation = active.gan.anchor is not None, active.gan.truncation  # (as the active sample was)
        fractions = class_probs(model.G).tolist() if model is not None and model.G.c_dim > 0 else []
        dialog = SampleDialog(
            self.editor.random_seed(),
            truncation,
            self.editor.random_seed,
            self,
            class_fractions=fractions,
            anchors=anchors,
            near_anchor=near,
            truncations=(session.default_truncation(), session.default_truncation(near_anchor=False)),
        )
        try:
            if fractions:
                self.editor.class_previews(dialog.set_class_previews)
            accepted, (seed, truncation, class_index, near) = dialog.exec(), dialog.values()
        finally:
            dialog.deleteLater()
        if accepted:
            self.editor.generate(seed, truncation, class_index, near_anchor=near)

    def random_sample(self) -> None:
        """A GAN layer from a random seed."""
        self.editor.generate(None)

    def choose_pti_invert(self) -> None:
        """Generate > Invert with Pivotal Tuning: ask for the number of tuning steps, then invert and tune."""
        masked = self.editor.inversion_mask_layer() is not None
        dialog = PivotalTuningDialog(self.settings.pti_steps(DEFAULT_PTI_STEPS), masked=masked, parent=self)
        try:
            accepted, steps = dialog.exec(), dialog.values()
        finally:
            dialog.deleteLater()
        if accepted:
            self.settings.set_pti_steps(steps)
            self.editor.invert_image(pti_steps=steps)

    def show_about(self) -> None:
        """Help > About."""
        QMessageBox.about(
            self,
            f"About {APP_NAME}",
            f"<b>{APP_NAME}</b> {__version__}<br>Edit pictures in the latent space of a GAN: generate, paint masks, "
            "slide latent directions, work on layers.<br>MIT licence.",
        )

    def offer_recovery(self, choose: Callable[[RecoveryFile], RecoveryChoice] | None = None) -> bool:
        """At startup: offer the autosaves of sessions that did not exit cleanly, newest first (``choose`` answers
        instead of a message box). True if one was recovered: it is opened marked as modified, with its original
        path for Save."""
        for rec in find_recoverable(self.autosave.folder):
            choice = choose(rec) if choose is not None else ask_recovery(self, rec)
            if choice == RecoveryChoice.DISCARD:
                rec.remove()
                continue
            if choice != RecoveryChoice.RECOVER or not self.open_project(rec.document):
                return False
            self.autosave.adopt(rec)
            self.canvas.zoom_to_fit()
            self.show_status(f"Recovered unsaved changes to {self.doc.path.name if self.doc.path else 'Untitled'}")
            return True
        return False

    # ----------------------------------------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.editor.file_io_busy:  # (a file is being written: close once it is done)
            event.ignore()
            self._close_when_idle = True
            return
        if not self.confirm_discard():
            event.ignore()
            return
        app = QApplication.instance()
        if isinstance(app, QApplication) and self._watching_focus:  # (closeEvent can come twice)
            self._watching_focus = False
            app.focusChanged.disconnect(self._watch_focus)
        self.autosave.close()  # a clean exit (or the changes were discarded): nothing to recover
        self.settings.set_window_state(self.saveGeometry(), self.saveState())
        self.settings.sync()
        if self._owns_runner and not self.runner.shutdown(timeout=30):
            log.error("a background job did not stop within 30 s of being cancelled")
            self.worker_stuck = True
        super().closeEvent(event)
