# The components of plugboard's README, verbatim but for the import prefix.
import typing as _t
from plugboard_beam.component import Component, IOController as IO
from plugboard_beam.schemas import ComponentArgsDict


class A(Component):
    io = IO(outputs=["out_1"])

    def __init__(self, iters: int, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self._iters = iters

    async def init(self) -> None:
        self._seq = iter(range(self._iters))

    async def step(self) -> None:
        try:
            self.out_1 = next(self._seq)
        except StopIteration:
            await self.io.close()


class B(Component):
    io = IO(inputs=["in_1"])

    def __init__(self, path: str, **kwargs: _t.Unpack[ComponentArgsDict]) -> None:
        super().__init__(**kwargs)
        self._path = path

    async def init(self) -> None:
        self._f = open(self._path, "w")

    async def step(self) -> None:
        out = 2 * self.in_1
        self._f.write(f"{out}\n")

    async def destroy(self) -> None:
        self._f.close()


from plugboard_beam.component import component


@component(inputs=["in_1"], outputs=["out_1"])
def pow2(in_1: int) -> dict[str, int]:
    return {"out_1": in_1**2}
