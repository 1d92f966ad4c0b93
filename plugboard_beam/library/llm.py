"""``LLMChat`` and ``LLMImageProcessor``: large language models through llama-index (plugboard
0.9.0's components, same arguments and fields).

Needs the optional ``llm`` extra (``pip install 'plugboard-beam[llm]'``: llama-index-core and its
OpenAI model). ``llm`` names any llama-index ``LLM`` class by import path (default
``llama_index.llms.openai.OpenAI``, which reads ``OPENAI_API_KEY``); ``llm_kwargs`` are its
constructor arguments. ``llama_index.core.llms.MockLLM`` answers offline (it echoes the prompt).

A ``response_model`` (a pydantic model, or its import path as a string: what YAML gives) asks
for structured output; with ``expand_response=True`` the model's fields become the component's
output fields (``llm.latitude``) instead of ``response``. These fields are known before the
component is built (``io_for``), so connectors to them validate like any other.

On Beam the model instance is made on each worker where the component is built (an LLM client
holds connections and is never pickled with the component); a failed call fails that key's step
with the model's error, as any component error does.
"""

from __future__ import annotations

from collections import deque
from pydoc import locate
import typing as _t

from pydantic import BaseModel

from plugboard_beam.component.component import Component
from plugboard_beam.component.io_controller import IOController
from plugboard_beam.schemas import ComponentArgsDict

DEFAULT_LLM = "llama_index.llms.openai.OpenAI"


def _llama_index(what: str) -> None:
    try:
        import llama_index.core  # noqa: F401
    except ImportError:
        raise ImportError(f"{what} needs llama-index: pip install 'plugboard-beam[llm]' (llama-index-core, "
                          "and the package of the model you use, e.g. llama-index-llms-openai)") from None


def llm_class(path: _t.Any) -> type:
    """The llama-index ``LLM`` class at import path ``path``, or ``ValueError``."""
    from llama_index.core.llms import LLM

    if not isinstance(path, str) or not path:
        raise ValueError(f"'llm' must be the import path of a llama-index LLM class, not {path!r}")
    found = locate(path)
    if found is None or not isinstance(found, type) or not issubclass(found, LLM):
        raise ValueError(f"LLM class {path} not found in llama-index (is its package installed? e.g. "
                         "llama-index-llms-openai for llama_index.llms.openai.OpenAI)")
    return found


def response_model_class(model: _t.Any) -> _t.Optional[type[BaseModel]]:
    """``response_model`` as a pydantic model class (an import path is looked up), or ``ValueError``."""
    if model is None:
        return None
    if isinstance(model, str):
        found = locate(model)
        if found is None or not isinstance(found, type) or not issubclass(found, BaseModel):
            raise ValueError(f"Response model {model} not found.")
        return found
    if isinstance(model, type) and issubclass(model, BaseModel):
        return model
    raise ValueError(f"'response_model' must be a pydantic model or its import path, not {model!r}")


def _outputs(default: list[str], args: _t.Mapping[str, _t.Any]) -> list[str]:
    model = response_model_class(args.get("response_model"))
    if model is not None and args.get("expand_response"):
        return list(model.model_fields)
    return default


class _LLMBase(Component):
    """Shared set-up of ``LLMChat`` and ``LLMImageProcessor``: the model and structured output."""

    io = IOController()
    _input: _t.ClassVar[str] = ""

    def __init__(
        self,
        llm: str = DEFAULT_LLM,
        response_model: _t.Optional[type[BaseModel] | str] = None,
        expand_response: bool = False,
        llm_kwargs: _t.Optional[dict[str, _t.Any]] = None,
        **kwargs: _t.Unpack[ComponentArgsDict],
    ) -> None:
        super().__init__(**kwargs)
        _llama_index(type(self).__name__)
        if llm_kwargs is not None and not isinstance(llm_kwargs, dict):
            raise ValueError(f"'llm_kwargs' must be a mapping of the LLM's arguments, not {llm_kwargs!r}")
        self._llm_path = llm
        self._llm_kwargs = dict(llm_kwargs or {})
        self._response_model = response_model_class(response_model)
        self._structured = self._response_model is not None
        self._expand_response = self._structured and bool(expand_response)
        self._llm_obj: _t.Any = self._make_llm()  # errors in the model's arguments show now
        outputs = _outputs(list(type(self).io.outputs), {"response_model": self._response_model,
                                                         "expand_response": expand_response})
        self.io = IOController(inputs=type(self).io.inputs, outputs=outputs, initial_values=self.initial_values,
                               namespace=self.name)

    @classmethod
    def io_for(cls, args: _t.Mapping[str, _t.Any]) -> IOController:
        _llama_index(cls.__name__)
        llm_class(args.get("llm", DEFAULT_LLM))
        return IOController(inputs=cls.io.inputs, outputs=_outputs(list(cls.io.outputs), args))

    def _make_llm(self) -> _t.Any:
        llm = llm_class(self._llm_path)(**self._llm_kwargs)
        if self._response_model is not None:
            llm = llm.as_structured_llm(output_cls=self._response_model)
        return llm

    @property
    def _llm(self) -> _t.Any:
        """The llama-index model (structured when there is a ``response_model``)."""
        llm = self.__dict__.get("_llm_obj")
        if llm is None:
            llm = self.__dict__["_llm_obj"] = self._make_llm()
        return llm

    def __getstate__(self) -> dict[str, _t.Any]:
        state = dict(self.__dict__)
        state["_llm_obj"] = None  # a client with open connections: made again where it is used
        return state

    def _set_response(self, chat_response: _t.Any) -> None:
        if not self._expand_response:
            self.response = chat_response.message.content
            return
        raw = chat_response.raw
        if not isinstance(raw, BaseModel):
            model = self._response_model.__name__ if self._response_model else ""
            raise ValueError(f"{self.name}: expected a structured response ({model}) from the LLM, "
                             f"got {type(raw).__name__}")
        for field, value in raw.model_dump().items():
            setattr(self, field, value)


class LLMChat(_LLMBase):
    """Sends each ``prompt`` to an LLM (with an optional system prompt and the last
    ``context_window`` exchanges) and outputs its ``response`` (plugboard's ``LLMChat``)."""

    io = IOController(inputs=["prompt"], outputs=["response"])

    def __init__(
        self,
        llm: str = DEFAULT_LLM,
        system_prompt: _t.Optional[str] = None,
        context_window: int = 0,
        response_model: _t.Optional[type[BaseModel] | str] = None,
        expand_response: bool = False,
        llm_kwargs: _t.Optional[dict[str, _t.Any]] = None,
        **kwargs: _t.Unpack[ComponentArgsDict],
    ) -> None:
        """``llm``: the llama-index LLM class; ``system_prompt``: put before every request;
        ``context_window``: how many earlier prompt/response pairs each request repeats;
        ``response_model``, ``expand_response``: structured output (see the module);
        ``llm_kwargs``: the LLM's constructor arguments."""
        if isinstance(context_window, bool) or not isinstance(context_window, int) or context_window < 0:
            raise ValueError(f"'context_window' must be a whole number >= 0, not {context_window!r}")
        super().__init__(llm=llm, response_model=response_model, expand_response=expand_response,
                         llm_kwargs=llm_kwargs, **kwargs)
        from llama_index.core.llms import ChatMessage

        self._memory: deque[_t.Any] = deque(maxlen=context_window * 2)
        self._system_prompt = [ChatMessage.from_str(role="system", content=system_prompt)] if system_prompt else []

    async def step(self) -> None:
        """One request for the current ``prompt`` (none when it is empty)."""
        from llama_index.core.llms import ChatMessage

        if not self.prompt:
            return
        message = ChatMessage.from_str(role="user", content=str(self.prompt))
        response = await self._llm.achat([*self._system_prompt, *self._memory, message])
        self._memory.extend([message, response.message])
        self._set_response(response)


class LLMImageProcessor(_LLMBase):
    """Sends each ``image`` (a URL, data URI or path as text, or the image's bytes) with an
    optional text ``prompt`` to a vision model and outputs its ``response`` (plugboard's
    ``LLMImageProcessor``)."""

    io = IOController(inputs=["image"], outputs=["response"])

    def __init__(
        self,
        llm: str = DEFAULT_LLM,
        prompt: _t.Optional[str] = None,
        response_model: _t.Optional[type[BaseModel] | str] = None,
        expand_response: bool = False,
        llm_kwargs: _t.Optional[dict[str, _t.Any]] = None,
        **kwargs: _t.Unpack[ComponentArgsDict],
    ) -> None:
        """``prompt``: text sent with every image; the rest as ``LLMChat``."""
        super().__init__(llm=llm, response_model=response_model, expand_response=expand_response,
                         llm_kwargs=llm_kwargs, **kwargs)
        self._prompt = prompt

    async def step(self) -> None:
        """One request for the current ``image`` (none when there is no image)."""
        from llama_index.core.base.llms.types import ImageBlock, TextBlock
        from llama_index.core.llms import ChatMessage

        image = self.image
        if image is None:
            return
        blocks: list[_t.Any] = [TextBlock(text=self._prompt)] if self._prompt else []
        if isinstance(image, bytes):
            blocks.append(ImageBlock(image=image))
        elif isinstance(image, str):
            blocks.append(ImageBlock(url=image))
        else:
            raise TypeError(f"{self.name}: 'image' must be bytes or a URL/path string, not {type(image).__name__}")
        response = await self._llm.achat([ChatMessage(role="user", content=blocks)])
        self._set_response(response)


__all__ = ["LLMChat", "LLMImageProcessor"]
