"""The environment variable names the settings read (every alias of every field, nested groups included)."""

from __future__ import annotations

from pydantic_settings import BaseSettings

from core.devstack import DEV_RUNNER_SETTINGS
from core.settings import Settings


def setting_names(model: type[BaseSettings] = Settings) -> set[str]:
    names: set[str] = set()
    for field in model.model_fields.values():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseSettings):
            names |= setting_names(annotation)
            continue
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias)
        elif alias is not None:
            names |= {str(choice) for choice in alias.choices}
    return names


def every_variable_read() -> set[str]:
    """The app's settings plus the variables only `make dev` reads (ports, data folder)."""
    return setting_names() | set(DEV_RUNNER_SETTINGS)
