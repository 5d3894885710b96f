"""Autosave and crash recovery. No widgets (the recovery question is asked by ``editor.dialogs``).

While the document has unsaved changes, ``Autosaver`` writes it as an OpenRaster project into a recovery folder at
most ``interval`` seconds after the first change since the last autosave, together with a small JSON sidecar (the
document's original path, the time and the process id). The files are removed when the document becomes clean
(saved, all changes undone, replaced by New / Open) and at a clean exit (``close``). Files left behind by a process
that is no longer running belong to a crashed session: ``find_recoverable`` lists them for the startup offer.

Every file is written atomically (a temporary file, then ``os.replace``): the .ora by ``editor.project.save_project``,
the sidecar here, after the .ora, so a sidecar always points at a complete project. Timed autosaves are written by
a background thread (PNG compression releases the GIL), so the GUI does not stall.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal

from editor.document import Document, Layer

if TYPE_CHECKING:
    from editor.pti import PtiWeights

log = logging.getLogger(__name__)

FORMAT = "gan-editor-recovery/1"
_NAME = re.compile(r"^autosave-(\d+)-[0-9a-f]+\.(?:ora|ora\.tmp|json|json\.tmp)$")


class RecoveryChoice(str, enum.Enum):
    """The answer to "recover the autosave of a crashed session?"."""

    RECOVER = "recover"
    DISCARD = "discard"  # delete the autosave
    LATER = "later"  # keep it and ask again at the next start


@dataclasses.dataclass(frozen=True)
class RecoveryFile:
    """One autosave: the project, its sidecar and what the sidecar says."""

    document: Path  # the autosaved .ora
    info: Path  # its JSON sidecar
    original_path: Path | None  # the file the document came from (None: never saved)
    saved_at: float  # seconds since the epoch
    pid: int  # the process that wrote it
    keep_file: bool = False  # the original is another program's file Save must not overwrite (Document.keep_file)

    def remove(self) -> None:
        """Delete the project, the sidecar and any half-written temporary files."""
        for path in (self.info, self.document, _tmp(self.info), _tmp(self.document)):
            path.unlink(missing_ok=True)


def _tmp(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def process_alive(pid: int) -> bool:
    """True if a process with this id is running (when it cannot be told, True: its files are left alone)."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate the process on Windows
        import ctypes

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return ctypes.get_last_error() == 5  # ERROR_ACCESS_DENIED: it exists
        try:
            code = ctypes.c_ulong()
            return not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)) or code.value == 259  # STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by someone else
        return True
    return True


def read_recovery_info(info: Path) -> RecoveryFile:
    """Parse a sidecar (ValueError or OSError if it is damaged or unreadable)."""
    data = json.loads(info.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{info.name} is not a recovery file")
    original = data.get("original_path")
    return RecoveryFile(
        document=info.with_name(str(data["document"])),
        info=info,
        original_path=Path(original) if original else None,
        saved_at=float(data["saved_at"]),
        pid=int(data["pid"]),
        keep_file=bool(data.get("keep_file", False)),
    )


def find_recoverable(folder: str | Path) -> list[RecoveryFile]:
    """Autosaves of processes that are no longer running, newest first. Leftovers of such processes that hold no
    complete autosave (a crash during the first write) are deleted."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    for path in folder.iterdir():
        m = _NAME.match(path.name)
        orphan = path.name.endswith(".tmp") or (path.suffix == ".ora" and not path.with_suffix(".json").exists())
        if m and orphan and not process_alive(int(m.group(1))):
            path.unlink(missing_ok=True)
    found: list[RecoveryFile] = []
    for info in folder.glob("autosave-*.json"):
        try:
            rec = read_recovery_info(info)
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("ignoring the damaged recovery file %s: %s", info, e)
            continue
        if rec.document.is_file() and not process_alive(rec.pid):
            found.append(rec)
    return sorted(found, key=lambda r: r.saved_at, reverse=True)


@dataclasses.dataclass(frozen=True)
class _Snapshot:
    """What an autosave writes, taken on the GUI thread (layer pixels and tuned weights are values; masks are
    copied)."""

    width: int
    height: int
    layers: list[Layer]
    pti_weights: dict[str, PtiWeights]
    model_path: str | None
    original_path: str | None
    keep_file: bool


class Autosaver(QObject):
    """Autosaves one document into ``folder`` while it has unsaved changes; see the module docstring.

    Timed autosaves are written by a background thread from a snapshot, so the GUI does not stall on PNG
    compression; ``save_now``, ``discard`` and ``close`` wait for a write under way first.
    """

    saved = Signal(str)  # path of the autosave (emitted by the writing thread; queued to GUI-thread receivers)
    failed = Signal(str)  # a message for the status bar

    def __init__(
        self, doc: Document, folder: str | Path, *, interval: float = 30.0, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.doc = doc
        self.folder = Path(folder)
        stem = f"autosave-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.document_path = self.folder / f"{stem}.ora"
        self.info_path = self.folder / f"{stem}.json"
        self._closed = False
        self._writer: threading.Thread | None = None
        self._holds = 0  # see ``hold``
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(max(1, round(interval * 1000)))
        self.timer.timeout.connect(self._on_timeout)
        doc.undo_stack.indexChanged.connect(self._on_changed)
        doc.undo_stack.cleanChanged.connect(self._on_changed)
        doc.reset.connect(self._on_changed)

    @property
    def exists(self) -> bool:
        """True while this session has an autosave on disk."""
        return self.info_path.exists()

    def save_now(self) -> bool:
        """Write the autosave now, on this thread (False, and ``failed``, if it cannot be written)."""
        self.timer.stop()
        self.wait()
        return self._write(self._snapshot())

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a background write to finish; True when none is under way."""
        if self._writer is not None:
            self._writer.join(timeout)
            if self._writer.is_alive():
                return False
            self._writer = None
        return True

    def discard(self) -> None:
        """Remove this session's autosave (the document is clean, or its changes were thrown away)."""
        self.timer.stop()
        self.wait()
        for path in (self.info_path, self.document_path, _tmp(self.info_path), _tmp(self.document_path)):
            try:
                path.unlink(missing_ok=True)
            except OSError as e:
                log.warning("cannot remove the autosave %s: %s", path, e)

    def close(self) -> None:
        """A clean exit: stop autosaving and remove this session's autosave."""
        self._closed = True
        self.discard()

    def adopt(self, rec: RecoveryFile) -> None:
        """Take over a recovered autosave just opened into the document: the document gets its original path back
        and is marked modified, is autosaved as this session's, and the crashed session's files are removed."""
        self.doc.set_path(rec.original_path, keep_file=rec.keep_file)
        self.doc.undo_stack.resetClean()  # no state of the history is saved anywhere
        if self.save_now():
            rec.remove()

    def _snapshot(self) -> _Snapshot:
        doc = self.doc
        return _Snapshot(
            doc.width,
            doc.height,
            doc.saved_layers(),
            dict(doc.pti_weights),
            str(doc.model_path) if doc.model_path else None,
            str(doc.path) if doc.path is not None else None,
            doc.keep_file,
        )

    def _write(self, snap: _Snapshot) -> bool:
        """Write the project, then its sidecar (any thread; reports by signals)."""
        from editor.project import save_project

        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            save_project(
                self.document_path,
                snap.width,
                snap.height,
                snap.layers,
                model_path=snap.model_path,
                pti_weights=snap.pti_weights,
            )
            info = {
                "format": FORMAT,
                "document": self.document_path.name,
                "original_path": snap.original_path,
                "keep_file": snap.keep_file,
                "saved_at": time.time(),
                "pid": os.getpid(),
            }
            tmp = _tmp(self.info_path)
            tmp.write_text(json.dumps(info, indent=1), encoding="utf-8")
            os.replace(tmp, self.info_path)
        except (OSError, ValueError) as e:
            log.warning("autosave to %s failed: %s", self.document_path, e)
            self.failed.emit(f"Autosave failed: {e}")
            return False
        self.saved.emit(str(self.document_path))
        return True

    def _on_changed(self, *_args: object) -> None:
        if self._closed:
            return
        if self.doc.undo_stack.isClean():
            self.discard()
        elif not self.timer.isActive():
            self.timer.start()

    def hold(self) -> None:
        """No timed autosave until ``release`` (a save or open is writing or reading a file meanwhile: a second
        writer would compete with it, and the end of the save would then wait for this one)."""
        self._holds += 1

    def release(self) -> None:
        self._holds = max(0, self._holds - 1)

    def _on_timeout(self) -> None:
        if self._closed:
            return
        if self.doc.undo_stack.isClean():
            self.discard()
        elif self._holds or (self._writer is not None and self._writer.is_alive()):
            self.timer.start()  # held, or the previous write is still under way: try again later
        else:
            snap = self._snapshot()
            self._writer = threading.Thread(target=self._write, args=(snap,), name="gan-editor-autosave", daemon=True)
            self._writer.start()
