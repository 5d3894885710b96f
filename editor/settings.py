"""Preferences stored with QSettings (brush, last folders, window layout)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

ORGANIZATION = "gan-editor"
APPLICATION = "GAN Editor"
FOLDER_KINDS = ("image", "model", "export", "project")


class Settings:
    """Typed access to the app's QSettings. Tests pass ``Settings.at_path(tmp_path / "settings.ini")``."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.q = qsettings if qsettings is not None else QSettings(ORGANIZATION, APPLICATION)

    @classmethod
    def at_path(cls, path: str | Path) -> Settings:
        """Settings kept in one INI file (isolated from the user's real preferences)."""
        return cls(QSettings(str(path), QSettings.Format.IniFormat))

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

    def sync(self) -> None:
        self.q.sync()
