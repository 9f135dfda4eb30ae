"""The configuration reference: generated from the settings class, never stale,
and no setting without a description."""

from __future__ import annotations

import pytest
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from otc.settings import Settings
from stack.config_docs import DOC, UndocumentedSettingError, document


def test_the_committed_reference_is_generated_from_the_current_settings() -> None:
    assert DOC.read_text() == document(), "regenerate: python -m stack.config_docs (make docs)"


def test_every_setting_is_in_the_reference_with_its_default() -> None:
    text = document()
    for name, info in Settings.model_fields.items():
        assert f"| `OTC_{name.upper()}` |" in text
        assert str(info.description) in text
    assert "| `OTC_HTTP_PORT` | integer | `8000` |" in text


def test_the_development_jwt_secret_is_not_printed() -> None:
    from otc.settings import DEV_JWT_SECRET

    assert DEV_JWT_SECRET not in document()


def test_a_setting_without_a_description_is_refused() -> None:
    class Partly(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="OTC_")

        described: int = Field(default=1, description="has one")
        bare: int = 2

    with pytest.raises(UndocumentedSettingError, match="bare"):
        document(Partly)
