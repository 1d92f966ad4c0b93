"""The ``@component`` decorator: a component from a plain (or async) function."""

from __future__ import annotations

import importlib
import inspect
import itertools
import typing as _t

from plugboard_beam.component.component import Component, ComponentRegistry
from plugboard_beam.component.io_controller import IOController

_counter = itertools.count(1)


class ComponentDecoratorHelper:
    """What ``@component`` returns: call it like the function, or ``.component(name=...)``."""

    def __init__(self, func: _t.Callable[..., _t.Any], component_cls: type[Component]) -> None:
        self._func = func
        self.component_cls = component_cls
        self.__doc__ = func.__doc__
        self.__name__ = getattr(func, "__name__", "component")
        self.__module__ = getattr(func, "__module__", __name__)

    def component(self, name: _t.Optional[str] = None, **kwargs: _t.Any) -> Component:
        """A new component instance running the wrapped function as its step."""
        return self.component_cls(name=name or f"{self.__name__}_{next(_counter)}", **kwargs)

    def __call__(self, *args: _t.Any, **kwargs: _t.Any) -> _t.Any:
        return self._func(*args, **kwargs)


def _rebuild(module: str, qualname: str) -> type[Component]:
    obj: _t.Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return _t.cast(ComponentDecoratorHelper, obj).component_cls


def component(
    inputs: _t.Optional[_t.Iterable[str]] = None, outputs: _t.Optional[_t.Iterable[str]] = None
) -> _t.Callable[[_t.Callable[..., _t.Any]], ComponentDecoratorHelper]:
    """Turn a function returning ``{output: value}`` into a component type.

    The function's parameters are the input fields; it may be sync or async. In YAML the
    component is referred to by the function's import path (``module.function``).
    """

    def decorator(func: _t.Callable[..., _t.Any]) -> ComponentDecoratorHelper:
        is_async = inspect.iscoroutinefunction(func)
        module, qualname = func.__module__, func.__qualname__

        class _FuncComponent(Component):
            io = IOController(inputs=inputs, outputs=outputs)
            wrapped_function = staticmethod(func)

            async def step(self) -> None:
                args = {f: getattr(self, f) for f in self.io.inputs}
                out = func(**args)
                if is_async:
                    out = await out
                if not isinstance(out, dict):
                    raise ValueError(
                        f"function {func.__name__} must return a dict of outputs, got {type(out).__name__}"
                    )
                for k, v in out.items():
                    setattr(self, k, v)

            def __reduce_ex__(self, protocol: _t.SupportsIndex) -> _t.Any:
                # The class is made at run time: pickle it by the decorated function's path.
                return (_new_instance, (module, qualname), self.__dict__)

        _FuncComponent.__name__ = func.__name__
        _FuncComponent.__qualname__ = func.__qualname__
        _FuncComponent.__module__ = func.__module__
        ComponentRegistry.add(_FuncComponent, key=func.__name__)
        ComponentRegistry.add(_FuncComponent, key=f"{func.__module__}.{func.__name__}")
        return ComponentDecoratorHelper(func, _FuncComponent)

    return decorator


def _new_instance(module: str, qualname: str) -> Component:
    cls = _rebuild(module, qualname)
    return cls.__new__(cls)
