"""Where a progress_bar is drawn: a task on the running step's ProgressManager, or on the
script's own (one for all the open bars of a script, closed with the last of them)."""

from __future__ import annotations

from typing import Any

from tipi import context
from tipi.permanences.progress import ProgressManager

SCRIPT_LOG_INTERVAL = 5.0  # seconds between a script's plain lines of one bar, in a pipe


class BarDisplay:
    """progress_bar's side that talks to its ProgressManager (a mixin: the attributes are
    progress_bar's)."""

    _instances: Any
    _manager: ProgressManager | None
    fp: Any
    pos: int
    desc: str
    n: float
    total: float | None
    postfix: Any
    _lines_every: float | None
    _standard: bool

    def _open(self) -> None:
        """Join the display: the bar's task opens, with its current state."""
        manager, owned = manager_for(self._standard)
        parent = self._parent(manager)
        name = self.desc or "progress"
        while name in manager.names:
            name += "'"
        self._manager, self._owned, self._name = manager, owned, name
        self._shown, self._pushed = self._state(), self.n
        label, total, status = self._shown
        manager.add(
            name,
            total=total,
            parent=parent,
            label=label,
            completed=self.n,
            leave=True,  # decided at close
            unit=self.unit,
            unit_scale=self.unit_scale,
            unit_divisor=self.unit_divisor,
            slot=abs(self.pos),
            colour=self.colour,
            line=self.__str__,
            stream=self.fp,
            apart=not self._standard,
            interval=self._lines_every,
            announce=parent is None or self._lines_every is not None,
            # A nested bar's lines are paced out by log_interval, where tqdm's (every 0.1 s)
            # stay in a log: its last line is each epoch's trace there.
            ends=parent is not None,
        )
        if status:
            manager.update(name, status=status)

    def _parent(self, manager: ProgressManager) -> str | None:
        """The open bar this one runs inside: on the same display, the nearest line above."""
        # An explicit `position` (stored negative, as tqdm) nests as the order of opening does.
        mine = abs(self.pos)
        above = [
            bar
            for bar in list(self._instances)
            if bar is not self and bar._manager is manager and bar._name and abs(bar.pos) < mine
        ]
        return max(above, key=lambda bar: abs(bar.pos))._name if above else None

    def _state(self) -> tuple[str, float | None, str]:
        label = self.desc[:-2] if self.desc.endswith(": ") else self.desc
        return label, self.total, self.postfix if isinstance(self.postfix, str) else ""

    def _show(self) -> None:
        """Hand the bar's state to its task (the task decides what to draw or write)."""
        if self._manager is None:
            self._open()
            return
        state = self._state()
        if state != self._shown or self._cleared:
            label, total, status = self._shown = state
            visible = True if self._cleared else None
            self._cleared = False
            self._manager.update(
                self._name, completed=self.n, total=total, status=status, label=label,
                visible=visible,
            )  # fmt: skip
        elif self.n != self._pushed:
            self._manager.advance(self._name, self.n - self._pushed)
        self._pushed = self.n


_script: ProgressManager | None = None
_script_users = 0


def manager_for(standard: bool) -> tuple[ProgressManager, bool]:
    """The running step's ProgressManager (for bars on the terminal streams), else the
    script's own, shared by its open bars."""
    global _script, _script_users
    run = context.current()
    if run is not None and standard:
        manager = run.find(ProgressManager)
        if manager is not None:
            return manager, False
    if _script is None:
        _script = ProgressManager(log_interval=SCRIPT_LOG_INTERVAL)
        _script.initialize()
    _script_users += 1
    return _script, True


def release_script_manager() -> None:
    global _script, _script_users
    _script_users -= 1
    if _script_users <= 0 and _script is not None:
        _script.cleanup()
        _script, _script_users = None, 0
