from __future__ import annotations

import pytest

from tests.chat.slack.harness import ENV


@pytest.fixture(autouse=True)
def slack_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake tokens in the environment, the way a deployment passes real ones."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
