"""Blocking file reads and writes off the GUI thread.

Saving a 4096 x 4096 project of three layers spends about ten seconds compressing PNGs. ``call_off_gui_thread``
runs such work on a helper thread while the GUI thread keeps painting and handling timers and queued signals (job
progress, the canvas), so the window never stops responding. User input meanwhile is dropped, as a modal
progress box would (presses, clicks, moves, wheel, shortcuts, drops; releases pass, so that no key or button
stays down): nothing can edit the document under the writer or start a second save, and nothing clicked in
impatience happens seconds later. PNG compression and numpy release the GIL, so the helper runs at full speed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from PySide6.QtCore import QCoreApplication, QEvent, QEventLoop, QObject, QThread

T = TypeVar("T")

_E = QEvent.Type
DROPPED_INPUT = frozenset(
    {
        _E.MouseButtonPress,
        _E.MouseButtonDblClick,
        _E.MouseMove,
        _E.Wheel,
        _E.KeyPress,
        _E.ShortcutOverride,
        _E.Shortcut,
        _E.ContextMenu,
        _E.TabletPress,
        _E.TouchBegin,
        _E.DragEnter,
        _E.DragMove,
        _E.Drop,
    }
)


class _DropInput(QObject):
    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        return event.type() in DROPPED_INPUT


POLL_MS = 15  # the GUI thread looks for events this often while it waits
# (Through an event loop object: the static QCoreApplication.processEvents of PySide6 6.12 drops a reference to
# None on every call, and Python 3.11 aborts when None's count reaches zero, after some 10^4 calls.)


def call_off_gui_thread(fn: Callable[[], T]) -> T:
    """``fn()`` on a helper thread, the calling GUI thread processing non-input events until it returns; returns
    its result or raises its exception. Called from any other thread (or with no Qt application) it simply runs
    ``fn()``."""
    app = QCoreApplication.instance()
    if app is None or QThread.currentThread() is not app.thread():
        return fn()
    outcome: dict[str, object] = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as e:  # (re-raised on the calling thread)
            outcome["error"] = e
        finally:
            done.set()

    threading.Thread(target=run, name="gan-editor-file-io", daemon=True).start()
    loop = QEventLoop()
    dropper = _DropInput()
    app.installEventFilter(dropper)
    try:
        while not done.wait(POLL_MS / 1000):
            loop.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, POLL_MS)
    finally:
        app.removeEventFilter(dropper)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
