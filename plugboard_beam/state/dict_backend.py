"""``DictStateBackend``: state in a dictionary of this process (plugboard's default)."""

from __future__ import annotations

import threading
import typing as _t

from plugboard_beam.exceptions import NotFoundError
from plugboard_beam.state.backend import StateBackend, merge_key_row


class DictStateBackend(StateBackend):
    """State kept in memory, for one process's run (a job id cannot be reused). Nothing
    outlives the process: use ``SqliteStateBackend`` or ``PostgresStateBackend`` to query a
    run afterwards (the Beam runners refuse this backend)."""

    def __init__(self, *args: _t.Any, **kwargs: _t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._state_dict: dict[str, _t.Any] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, _t.Any]:
        state = self.__dict__.copy()
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, _t.Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def _state(self) -> dict[str, _t.Any]:
        """The whole state (assigning a dictionary merges it in, as plugboard's)."""
        return self._state_dict

    @_state.setter
    def _state(self, value: dict[str, _t.Any]) -> None:
        self._state_dict.update(value)

    async def _initialise_data(self, job_id: str, metadata: _t.Optional[dict[str, _t.Any]]) -> None:
        await super()._initialise_data(job_id, metadata)
        await self._set("_comp_proc_map", {})
        await self._set("_conn_proc_map", {})

    async def _get_job(self, job_id: str) -> dict[str, _t.Any]:
        raise NotFoundError("Cannot reuse job ID for non-persistent backend.")

    async def _get(self, key: str | tuple[str, ...], value: _t.Optional[_t.Any] = None) -> _t.Any:
        node: _t.Any = self._state_dict
        path = key if isinstance(key, tuple) else (key,)
        for part in path[:-1]:
            try:
                node = node[part]
            except KeyError:
                return value
            except TypeError:
                raise ValueError(f"Invalid key: {key}") from None
        if not isinstance(node, dict):
            raise ValueError(f"Invalid key: {key}")
        return node.get(path[-1], value)

    async def _set(self, key: str | tuple[str, ...], value: _t.Any) -> None:
        node = self._state_dict
        path = key if isinstance(key, tuple) else (key,)
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value

    def _merge_key(self, process_db_id: str, key: str, components: dict[str, str],
                   failures: list[_t.Mapping[str, _t.Any]], expected: _t.Collection[str]) -> dict[str, _t.Any]:
        with self._lock:
            rows = self._state_dict.setdefault("_keys", {}).setdefault(process_db_id, {})
            row = {"key": key, **merge_key_row(rows.get(key), components, failures, expected)}
            rows[key] = row
            return dict(row)

    def _key_rows(self, process_db_id: str) -> list[dict[str, _t.Any]]:
        with self._lock:
            return [dict(r) for r in self._state_dict.get("_keys", {}).get(process_db_id, {}).values()]
