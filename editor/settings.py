"""Preferences stored with QSettings (brush, last folders, window layout, autosave)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QStandardPaths

ORGANIZATION = "gan-editor"
APPLICATION = "GAN Editor"
FOLDER_KINDS = ("image", "model", "export", "project")
DEFAULT_AUTOSAVE_INTERVAL = 30.0  # seconds
MAX_RECENT = 10


class Settings:
    """Typed access to the app's QSettings. Tests pass ``Settings.at_path(tmp_path / "settings.ini")``.

    ``recovery_folder`` is where autosaves go unless the settings name another folder; by default the
    application's local data folder (``QStandardPaths.AppLocalDataLocation``) + ``/recovery``.
    """

    def __init__(self, qsettings: QSettings | None = None, *, recovery_folder: str | Path | None = None) -> None:
        self.q = qsettings if qsettings is not None else QSettings(ORGANIZATION, APPLICATION)
        self._default_recovery = Path(recovery_folder) if recovery_folder is not None else None

    @classmethod
    def at_path(cls, path: str | Path) -> Settings:
        """Settings kept in one INI file (isolated from the user's real preferences); autosaves go to a
        ``recovery`` folder beside it."""
        return cls(QSettings(str(path), QSettings.Format.IniFormat), recovery_folder=Path(path).parent / "recovery")

    def _float(self, key: str, default: float) -> float:
        try:
            return float(self.q.value(key, default))
        except (TypeError, ValueError):
            return default

    @property
    def brush_size(self) -> float:
        return self._float("brush/size", 40.0)

    @brush_size.setter
    def brush_size(self, value: float) -> None:
        self.q.setValue("brush/size", float(value))

    @property
    def brush_hardness(self) -> float:
        return self._float("brush/hardness", 0.6)

    @brush_hardness.setter
    def brush_hardness(self, value: float) -> None:
        self.q.setValue("brush/hardness", float(value))

    @property
    def inpaint_method(self) -> str:
        """The inpainting method the Inpaint button runs (the one used last): a key of the window's inpaint
        actions, e.g. "gan-inversion" or "gan-inversion+pti"."""
        return str(self.q.value("inpaint/method", "gan-inversion") or "gan-inversion")

    @inpaint_method.setter
    def inpaint_method(self, value: str) -> None:
        self.q.setValue("inpaint/method", str(value))

    def pti_steps(self, default: int) -> int:
        """The tuning steps of the last Invert with Pivotal Tuning, or ``default``."""
        try:
            steps = int(self.q.value("invert/pti_steps", default))
        except (TypeError, ValueError):
            return default
        return steps if steps > 0 else default

    def set_pti_steps(self, steps: int) -> None:
        self.q.setValue("invert/pti_steps", int(steps))

    def last_folder(self, kind: str) -> str:
        """The folder a file dialog of this kind (image, model, export) last used, or the home folder."""
        if kind not in FOLDER_KINDS:
            raise ValueError(f"unknown folder kind {kind!r}")
        folder = str(self.q.value(f"folders/{kind}", "") or "")
        return folder if folder and Path(folder).is_dir() else str(Path.home())

    def set_last_folder(self, kind: str, path: str | Path) -> None:
        """Remember the folder of ``path`` (a file or a folder)."""
        if kind not in FOLDER_KINDS:
            raise ValueError(f"unknown folder kind {kind!r}")
        p = Path(path)
        self.q.setValue(f"folders/{kind}", str(p if p.is_dir() else p.parent))

    @property
    def mask_color(self) -> tuple[int, int, int] | None:
        """The mask overlay's colour chosen in View > Mask Colour (None: the default red)."""
        value = str(self.q.value("view/mask_color", "") or "")
        if len(value) == 7 and value.startswith("#"):
            try:
                return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)
            except ValueError:
                return None
        return None

    @mask_color.setter
    def mask_color(self, rgb: tuple[int, int, int]) -> None:
        self.q.setValue("view/mask_color", "#{:02x}{:02x}{:02x}".format(*rgb))

    def recent_files(self) -> list[str]:
        """Pictures and projects opened or saved lately, newest first (at most ``MAX_RECENT``)."""
        value = self.q.value("recent/files", [])
        items = [value] if isinstance(value, str) else list(value or [])
        return [str(v) for v in items if v][:MAX_RECENT]

    def add_recent_file(self, path: str | Path) -> None:
        """Put ``path`` first in the recent files."""
        path = str(Path(path).absolute())
        self.q.setValue("recent/files", [path, *[p for p in self.recent_files() if p != path]][:MAX_RECENT])

    def remove_recent_file(self, path: str | Path) -> None:
        self.q.setValue("recent/files", [p for p in self.recent_files() if p != str(path)])

    def window_state(self) -> tuple[QByteArray | None, QByteArray | None]:
        """(geometry, dock/toolbar state) saved at the last exit."""
        geometry, state = self.q.value("window/geometry"), self.q.value("window/state")
        return (
            geometry if isinstance(geometry, QByteArray) else None,
            state if isinstance(state, QByteArray) else None,
        )

    def set_window_state(self, geometry: QByteArray, state: QByteArray) -> None:
        self.q.setValue("window/geometry", geometry)
        self.q.setValue("window/state", state)

    @property
    def autosave_interval(self) -> float:
        """Seconds from the first unsaved change to its autosave (at least 0.05)."""
        return max(0.05, self._float("autosave/interval", DEFAULT_AUTOSAVE_INTERVAL))

    @autosave_interval.setter
    def autosave_interval(self, seconds: float) -> None:
        self.q.setValue("autosave/interval", float(seconds))

    @property
    def recovery_folder(self) -> Path:
        """The folder of autosaves (crash recovery files)."""
        stored = str(self.q.value("autosave/folder", "") or "")
        if stored:
            return Path(stored)
        if self._default_recovery is not None:
            return self._default_recovery
        base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppLocalDataLocation)
        return Path(base or Path.home() / ".gan-editor") / "recovery"

    @recovery_folder.setter
    def recovery_folder(self, folder: str | Path) -> None:
        self.q.setValue("autosave/folder", str(folder))

    def sync(self) -> None:
        self.q.sync()
