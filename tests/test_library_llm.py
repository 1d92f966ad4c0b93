"""LLMChat and LLMImageProcessor (plugboard 0.9.0's) with llama-index's MockLLM: offline, no
network. A model shaped as plugboard's tutorial 003 (text -> LLM with a structured, expanded
response -> a weather lookup -> CSV) runs on --runner local and the DirectRunner."""

from __future__ import annotations

import asyncio
from pathlib import Path
import pickle
import subprocess
import textwrap
import typing as _t

from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse, ImageBlock, TextBlock
from llama_index.core.llms import MockLLM
from pydantic import BaseModel, Field
import pytest

from conftest import cli_command
from plugboard_beam.library import LLMChat, LLMImageProcessor

HERE = "test_library_llm"


class RecordingLLM(MockLLM):
    """Answers ``reply <n>`` and keeps every request's messages."""

    requests: list[list[ChatMessage]] = Field(default_factory=list)

    def chat(self, messages: _t.Sequence[ChatMessage], **kwargs: _t.Any) -> ChatResponse:
        self.requests.append(list(messages))
        return ChatResponse(message=ChatMessage(role="assistant", content=f"reply {len(self.requests) - 1}"))


class Answer(BaseModel):
    x: int
    y: str


class AnswerLLM(MockLLM):
    """Completes every prompt with the JSON of ``Answer(x=45, y="test")``."""

    def complete(self, prompt: str, formatted: bool = False, **kwargs: _t.Any) -> CompletionResponse:
        return CompletionResponse(text='{"x": 45, "y": "test"}')


def run(coro: _t.Awaitable[_t.Any]) -> _t.Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


@pytest.mark.parametrize(("system_prompt", "context_window"), [(None, 0), ("You are a chatbot.", 2)])
def test_chat_sends_system_prompt_and_context_window(system_prompt: _t.Optional[str], context_window: int) -> None:
    llm = LLMChat(name="llm", llm=f"{HERE}.RecordingLLM", system_prompt=system_prompt, context_window=context_window)

    async def go() -> None:
        await llm.init()
        for i in range(5):
            llm.prompt = f"prompt {i}"
            await llm.step()
            assert llm.response == f"reply {i}"
            sent = llm._llm.requests[-1]
            assert len(sent) == (1 if system_prompt else 0) + 2 * min(i, context_window) + 1
            assert sent[0].role.value == ("system" if system_prompt else "user")
            assert sent[-1].content == f"prompt {i}"
            if context_window and i:
                assert [m.role.value for m in sent[-3:-1]] == ["user", "assistant"]
                assert sent[-2].content == f"reply {i - 1}"

    run(go())


def test_chat_with_llama_index_mock_llm_answers_offline() -> None:
    llm = LLMChat(name="llm", llm="llama_index.core.llms.MockLLM")

    async def go() -> None:
        await llm.init()
        llm.prompt = "Which city has canals?"
        await llm.step()

    run(go())
    assert isinstance(llm.response, str) and "Which city has canals?" in llm.response


def test_empty_prompt_sends_nothing() -> None:
    llm = LLMChat(name="llm", llm=f"{HERE}.RecordingLLM")
    run(llm.step())
    assert llm._llm.requests == [] and llm.response is None


@pytest.mark.parametrize("response_model", [Answer, f"{HERE}.Answer"])
def test_structured_response_as_json_text(response_model: _t.Any) -> None:
    llm = LLMChat(name="llm", llm=f"{HERE}.AnswerLLM", response_model=response_model, system_prompt="Solve")
    assert llm.io.outputs == ("response",)
    llm.prompt = "x and y?"
    run(llm.step())
    assert Answer.model_validate_json(llm.response) == Answer(x=45, y="test")


@pytest.mark.parametrize("response_model", [Answer, f"{HERE}.Answer"])
def test_expanded_response_fields_become_outputs(response_model: _t.Any) -> None:
    args = {"name": "llm", "llm": f"{HERE}.AnswerLLM", "response_model": response_model, "expand_response": True}
    assert LLMChat.io_for(args).outputs == ("x", "y")  # known before the component is built
    llm = LLMChat(**args)
    assert llm.io.outputs == ("x", "y") and LLMChat.io.outputs == ("response",)  # the class is untouched
    llm.prompt = "x and y?"
    run(llm.step())
    assert (llm.x, llm.y) == (45, "test")


def test_bad_arguments_are_clear() -> None:
    with pytest.raises(ValueError, match=r"LLM class nowhere\.Nothing not found"):
        LLMChat(name="llm", llm="nowhere.Nothing")
    with pytest.raises(ValueError, match=r"LLM class pydantic\.BaseModel not found"):
        LLMChat(name="llm", llm="pydantic.BaseModel")
    with pytest.raises(ValueError, match=r"Response model nowhere\.Model not found"):
        LLMChat(name="llm", llm=f"{HERE}.RecordingLLM", response_model="nowhere.Model")
    with pytest.raises(ValueError, match="context_window"):
        LLMChat(name="llm", llm=f"{HERE}.RecordingLLM", context_window=-1)


def test_component_pickles_without_its_client_and_keeps_its_memory() -> None:
    llm = LLMChat(name="llm", llm=f"{HERE}.RecordingLLM", context_window=1)
    llm.prompt = "first"
    run(llm.step())
    copy = pickle.loads(pickle.dumps(llm))
    assert copy.__dict__["_llm_obj"] is None  # made again on use
    copy.prompt = "second"
    run(copy.step())
    assert [m.content for m in copy._llm.requests[-1]] == ["first", "reply 0", "second"]


def test_image_processor_sends_prompt_and_image_url_or_bytes() -> None:
    proc = LLMImageProcessor(name="img", llm=f"{HERE}.RecordingLLM", prompt="Describe this image")

    async def go() -> None:
        await proc.init()
        proc.image = "https://example.com/image.png"
        await proc.step()
        proc.image = b"fakeimagebytes"
        await proc.step()

    run(go())
    (by_url,), (by_bytes,) = proc._llm.requests
    text, image = by_url.blocks
    assert isinstance(text, TextBlock) and text.text == "Describe this image"
    assert isinstance(image, ImageBlock) and str(image.url) == "https://example.com/image.png"
    image = by_bytes.blocks[1]
    assert isinstance(image, ImageBlock) and image.image is not None and image.url is None
    assert proc.response == "reply 1"


def test_image_processor_refuses_other_values() -> None:
    proc = LLMImageProcessor(name="img", llm=f"{HERE}.RecordingLLM")
    proc.image = 3
    with pytest.raises(TypeError, match="img: 'image' must be bytes"):
        run(proc.step())


PARTS = '''
import typing as _t
from llama_index.core.base.llms.types import CompletionResponse
from llama_index.core.llms import MockLLM
from pydantic import BaseModel
from plugboard_beam.component import Component, IOController as IO

PLACES = {"London": ("London", 51.5, -0.12), "Australia": ("Canberra", -35.3, 149.1),
          "canals": ("Amsterdam", 52.4, 4.9), "United States": ("New York", 40.7, -74.0)}


class Location(BaseModel):
    location: str
    latitude: float
    longitude: float


class GeoLLM(MockLLM):
    """Offline stand-in for OpenAI: finds the place named in the prompt."""

    def complete(self, prompt: str, formatted: bool = False, **kwargs: _t.Any) -> CompletionResponse:
        user = prompt.rsplit("user:", 1)[-1]
        name, lat, lon = next(v for k, v in PLACES.items() if k in user)
        return CompletionResponse(text=Location(location=name, latitude=lat, longitude=lon).model_dump_json())


class WeatherAPI(Component):
    """Offline stand-in for the weather service: a made-up reading from the coordinates."""

    io = IO(inputs=["latitude", "longitude"], outputs=["temperature", "wind_speed"])

    async def step(self) -> None:
        self.temperature = round(30 - abs(self.latitude) / 3, 1)
        self.wind_speed = round(abs(self.longitude) / 10, 2)
'''

MODEL = """
    plugboard:
      process:
        args:
          components:
          - type: plugboard_beam.library.file_io.FileReader
            args: {name: load-text, path: input.csv, field_names: [text]}
          - type: plugboard_beam.library.file_io.FileWriter
            args: {name: save-results, path: output.csv, field_names: [location, temperature, wind_speed]}
          - type: plugboard_beam.library.llm.LLMChat
            args:
              name: llm
              llm: parts.GeoLLM
              system_prompt: Identify a geographical location from the input and provide its latitude and longitude
              response_model: parts.Location
              expand_response: true
          - type: parts.WeatherAPI
            args: {name: weather}
          connectors:
          - {source: load-text.text, target: llm.prompt}
          - {source: llm.latitude, target: weather.latitude}
          - {source: llm.longitude, target: weather.longitude}
          - {source: llm.location, target: save-results.location}
          - {source: weather.temperature, target: save-results.temperature}
          - {source: weather.wind_speed, target: save-results.wind_speed}
"""

INPUT = """text
I'm going cycling in London
What is the capital of Australia?
Which European city is most famous for its canals?
What is the most populous city in the United States?
"""


def _tutorial(tmp_path: Path, model: str = MODEL) -> None:
    (tmp_path / "parts.py").write_text(PARTS)
    (tmp_path / "input.csv").write_text(INPUT)
    (tmp_path / "model.yaml").write_text(textwrap.dedent(model).lstrip())


@pytest.mark.slow
@pytest.mark.parametrize("runner", ["local", "direct"])
def test_tutorial_003_shape_with_mock_llm(tmp_path: Path, runner: str) -> None:
    _tutorial(tmp_path)
    proc = subprocess.run([*cli_command(), "process", "run", "model.yaml", "--runner", runner], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "output.csv").read_text() == (
        "location,temperature,wind_speed\n"
        "London,12.8,0.01\n"
        "Canberra,18.2,14.91\n"
        "Amsterdam,12.5,0.49\n"
        "New York,16.4,7.4\n"
    )


def test_expanded_fields_validate_like_any_other(tmp_path: Path) -> None:
    """``llm.response`` does not exist when the response is expanded: validation says so."""
    _tutorial(tmp_path, MODEL.replace("source: llm.location", "source: llm.response"))
    proc = subprocess.run([*cli_command(), "process", "validate", "model.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "llm.response" in out and "Traceback" not in out
