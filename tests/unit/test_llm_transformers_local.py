"""The transformers provider's setup errors, which need neither torch nor a model."""

import sys

import pytest

from partyflow.config import Home
from partyflow.llm.config import ProvidersConfig
from partyflow.llm.errors import MissingExtraError, ProviderConfigError
from partyflow.llm.providers import create
from partyflow.llm.types import ChatRequest, UserMessage

HELLO = ChatRequest(messages=(UserMessage(content="hi"),))


@pytest.fixture
def home(tmp_path):
    return Home(tmp_path).ensure()


def provider(home, path="tiny"):
    config = ProvidersConfig.from_mapping({"providers": {"tiny": {"type": "transformers", "path": path}}},
                                          environ={})
    return create("tiny", config, home=home)


def test_creating_is_cheap_and_names_the_folder(home):
    made = provider(home)
    assert made.path == home.models / "llm" / "tiny" and made.default_model == "tiny"
    assert "tiny" in repr(made)


def test_a_folder_that_is_not_a_model_is_explained(home):
    (home.models / "llm" / "tiny").mkdir()
    with pytest.raises(ProviderConfigError, match="not a transformers model folder.*save_pretrained"):
        provider(home).chat(HELLO)


def test_a_missing_extra_names_the_install_command(home, monkeypatch):
    for name in ("torch", "transformers"):  # as if the extra were not installed, whatever this machine has
        monkeypatch.setitem(sys.modules, name, None)
    (home.models / "llm" / "tiny").mkdir()
    (home.models / "llm" / "tiny" / "config.json").write_text("{}")
    with pytest.raises(MissingExtraError, match=r"pip install 'partyflow\[local\]'"):
        provider(home).chat(HELLO)
