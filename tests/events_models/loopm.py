from ev_parts import Relay, Src  # noqa: F401 - Src is used by loop.yaml (loopm.Src)


class LoggedRelay(Relay):
    def __init__(self, path: str = "", **kw):
        super().__init__(**kw)
        self.path = path

    async def destroy(self) -> None:
        await super().destroy()
        if self.path:
            with open(self.path, "w") as f:
                f.write("\n".join(self.log) + "\n")
