"""How a campaign-platform module (Braze, Mailchimp, Google Ads, Meta, Klaviyo, Mailman) declares
itself to the registry: its `DESTINATION` (`platform_spec`), built either by a function of its own
that reads the typed config (`sync_config`) or from a `ClientRecipe`. Grain: one spec per platform
module, one config per sync.

Every platform is a diff destination that can erase a person (`deletes=True`); the errors that
mean "this sync cannot run" are `PlatformConfigError` (a missing env var, a bad setting) and
`PlatformAuthError` (refused credentials), which each platform's own error types subclass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from orchestration.activation.destinations.http_platform import (
    PlatformAuthError,
    PlatformConfig,
    PlatformConfigError,
)
from orchestration.activation.destinations.registry import DestinationSpec, Limits, RateLimiter

if TYPE_CHECKING:
    from orchestration.activation.sync_definition import SyncDefinition

ConfigT = TypeVar("ConfigT", bound=PlatformConfig)
ClientT = TypeVar("ClientT")


def sync_config(sync: SyncDefinition, model: type[ConfigT], needs: str) -> ConfigT:
    """The sync's `config:` as the platform's model, or the model's `config_error` naming the
    sync file and what its config `needs` (a sync validated for another destination kind)."""
    config = sync.config
    if not isinstance(config, model):
        raise model.config_error(f"{sync.path}: config: {needs}")
    return config


def _no_options(sync: SyncDefinition) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class ClientRecipe:
    """How the registry builds one sync's client,
    `client(config, sync name, *credentials, log=, rate=, **options(sync))`: the sync's config as
    the platform's model (`sync_config`, `needs` naming what is missing), each credential from
    the env var its config names (`secrets`: config key → what the credential is, for the error
    naming the variable), a rate limiter at the sync's `rate_per_second`."""

    client: Callable[..., Any]
    needs: str
    secrets: dict[str, str]
    options: Callable[[SyncDefinition], dict[str, Any]] = field(default=_no_options)

    def build(
        self, model: type[PlatformConfig], sync: SyncDefinition, log: Callable[[str], None]
    ) -> Any:
        """The client of `sync` (class docstring)."""
        config = sync_config(sync, model, self.needs)
        credentials = [config.env(key, what) for key, what in self.secrets.items()]
        rate = RateLimiter(sync.rate_per_second)
        return self.client(config, sync.name, *credentials, log=log, rate=rate,
                           **self.options(sync))  # fmt: skip


def platform_spec(
    kind: str,
    description: str,
    config: type[PlatformConfig],
    limits: Limits,
    build: Callable[[SyncDefinition, Callable[[str], None]], Any] | ClientRecipe,
    **more: Any,
) -> DestinationSpec:
    """The registry entry of a campaign platform (module docstring); `build` is the platform's
    own function or a `ClientRecipe`; `more` sets any other DestinationSpec field (modes,
    reports_unsubscribes, extra error types in `errors`)."""
    errors = (PlatformConfigError, PlatformAuthError, *more.pop("errors", ()))
    if isinstance(build, ClientRecipe):
        build = partial(build.build, config)
    return DestinationSpec(kind=kind, description=description, config=config, limits=limits,
                           build=build, errors=errors, deletes=True, **more)  # fmt: skip
