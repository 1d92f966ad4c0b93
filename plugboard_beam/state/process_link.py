"""How a ``LocalProcess`` reports to its state backend (plugboard's ``Process.connect_state``
and status publishing): the process and its components and connectors once connected, their
statuses after ``init()``, when the run starts and when it ends, and the run's one key row
(key ``default``: its components' statuses and its failures)."""

from __future__ import annotations

import logging
import typing as _t

from plugboard_beam.exceptions import NotFoundError
from plugboard_beam.state.backend import StateBackend, StatefulProcess, failure_entry

log = logging.getLogger(__name__)

#: the key row of a process run in this process
PROCESS_KEY = "default"


class ProcessStateLink:
    """The state side of one process: ``connect``, ``publish``, ``ended``, ``close``."""

    def __init__(self, state: StateBackend) -> None:
        self.state = state
        self.connected = False

    async def connect(self, process: StatefulProcess, state: _t.Optional[StateBackend] = None) -> None:
        """Start the job (``state.init()``) and store the process with its components and
        connectors (once; ``state`` replaces the backend before that)."""
        if self.connected:
            return
        if state is not None:
            self.state = state
        await self.state.init()
        await self.state.upsert_process(process, with_components=True)
        for comp in process.components.values():
            comp._state = self.state
            comp._state_is_connected = True
        self.connected = True

    async def publish(self, process: StatefulProcess) -> None:
        """Store every component's ``dict()`` and the process's status."""
        if not self.connected:
            return
        for comp in process.components.values():
            try:
                await self.state.upsert_component(comp)
            except NotFoundError:
                raise
            except Exception as exc:  # e.g. a field value dict() cannot copy: the run goes on, said loudly
                log.error("state: component %r of process %r: its dict() could not be stored (%s: %s); its "
                          "status is %s", comp.name, process.id, type(exc).__name__, exc, comp.status)
        await self.state.update_process_status(process.id, process.status)

    async def ended(self, process: StatefulProcess, errors: _t.Sequence[_t.Any] = ()) -> None:
        """The run ended (``errors``: its ``StepError`` s): components, process status and the
        key row with the failures."""
        if not self.connected:
            return
        await self.publish(process)
        await self.state.upsert_key(
            process.id, PROCESS_KEY, {c.name: str(c.status) for c in process.components.values()},
            [failure_entry(e) for e in errors], expected=list(process.components))

    async def close(self, process: StatefulProcess) -> None:
        """Release the backend (plugboard's ``Process.destroy``)."""
        if not self.connected:
            return
        for comp in process.components.values():
            comp._state_is_connected = False
        self.connected = False
        await self.state.destroy()

