"""Components that fail on request, for the failure-protocol tests (written into each model's
folder, so worker processes import them the way they import a user's modules)."""

SOURCE = '''
from plugboard_beam.component import Component, IOController as IO


class Emit(Component):
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


class Fragile(Component):
    """Passes x on; raises in its constructor, init or step, or emits an unpicklable value, on request."""
    io = IO(inputs=["x"], outputs=["y"])

    def __init__(self, fail_at=-1, fail_in="", bad_at=-1, marker="", **kw):
        if fail_in == "construct":
            raise ValueError("cannot build")
        super().__init__(**kw)
        self._fail_at, self._fail_in, self._bad_at, self._marker = fail_at, fail_in, bad_at, marker

    async def init(self):
        if self._fail_in == "init":
            raise OSError("no device")

    async def step(self):
        if self.x == self._fail_at:
            raise RuntimeError(f"broke at {self.x}")
        self.y = (i for i in range(3)) if self.x == self._bad_at else self.x

    async def destroy(self):
        if self._marker:
            with open(self._marker, "w") as f:
                f.write("destroyed\\n")


class Writer(Component):
    """Writes every value it steps on, then 'destroyed' when destroyed."""
    io = IO(inputs=["y"])

    def __init__(self, path, **kw):
        super().__init__(**kw)
        self._path = path

    async def init(self):
        self._f = open(self._path, "w")

    async def step(self):
        self._f.write(f"{self.y}\\n")

    async def destroy(self):
        f = getattr(self, "_f", None)
        if f is not None:
            f.write("destroyed\\n")
            f.close()
'''

#: e -> frag -> w, and e -> sib (a component queued beside the failing one)
MODEL = {"plugboard": {"process": {"args": {
    "components": [
        {"type": "fparts.Emit", "args": {"name": "e", "n": 64}},
        {"type": "fparts.Fragile", "args": {"name": "frag", "marker": "out/{key}-frag.destroyed"}},
        {"type": "fparts.Writer", "args": {"name": "w", "path": "out/{key}-w.txt"}},
        {"type": "fparts.Writer", "args": {"name": "sib", "path": "out/{key}-sib.txt"}},
    ],
    "connectors": [{"source": "e.x", "target": "frag.x"}, {"source": "frag.y", "target": "w.y"},
                   {"source": "e.x", "target": "sib.y"}]}}}}
