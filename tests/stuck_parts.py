"""Components for the step time limit tests (written into each model's folder, so worker
processes import them the way they import a user's modules)."""

SOURCE = '''
import asyncio
import time

from plugboard_beam.component import Component, IOController as IO


class Count(Component):
    """Sends 1..n, then closes."""
    io = IO(outputs=["x"])

    def __init__(self, n, **kw):
        super().__init__(**kw)
        self._n, self._i = n, 0

    async def step(self):
        if self._i >= self._n:
            await self.io.close()
            return
        self._i += 1
        self.x = self._i


class Stuck(Component):
    """Passes x on; at x == stuck_at its step blocks: time.sleep ("sleep"), await asyncio.sleep
    ("async") or a busy loop ("busy")."""
    io = IO(inputs=["x"], outputs=["y"])

    def __init__(self, stuck_at=-1, how="sleep", **kw):
        super().__init__(**kw)
        self._at, self._how = stuck_at, how

    async def step(self):
        if self.x == self._at:
            if self._how == "sleep":
                time.sleep(3600)
            elif self._how == "async":
                await asyncio.sleep(3600)
            else:
                while True:
                    pass
        self.y = self.x


class Keep(Component):
    """Writes every value it steps on to its file, then 'destroyed' when destroyed."""
    io = IO(inputs=["y"])

    def __init__(self, path, **kw):
        super().__init__(**kw)
        self._path = path

    async def init(self):
        self._f = open(self._path, "w")

    async def step(self):
        self._f.write(f"{self.y}\\n")
        self._f.flush()

    async def destroy(self):
        self._f.write("destroyed\\n")
        self._f.close()
'''


def model(out: str, n: int = 5, stuck_at: int = 3, how: str = "sleep", timeout: str = "") -> str:
    """The YAML of count -> stuck -> keep (``timeout``: a ``step_timeout:`` line for ``stuck``);
    ``keep`` writes ``<out>/out-<key>.txt``."""
    limit = f"\n          step_timeout: {timeout}" if timeout else ""
    return f"""
plugboard:
  process:
    args:
      components:
      - type: stuck_parts_mod.Count
        args:
          name: count
          n: {n}
      - type: stuck_parts_mod.Stuck
        args:
          name: stuck
          stuck_at: {stuck_at}
          how: {how}{limit}
      - type: stuck_parts_mod.Keep
        args:
          name: keep
          path: "{out}/out-{{key}}.txt"
      connectors:
      - source: count.x
        target: stuck.x
      - source: stuck.y
        target: keep.y
"""
