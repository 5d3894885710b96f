"""Icons shipped in ``resources/icons`` (SVG, drawn for a dark theme)."""

from __future__ import annotations

from functools import cache

from PySide6.QtGui import QIcon

from ganmodels.resources import resources_dir


@cache
def icon(name: str) -> QIcon:
    """The icon ``resources/icons/<name>.svg`` (an empty icon if the file is missing)."""
    path = resources_dir() / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.exists() else QIcon()
