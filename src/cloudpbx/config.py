"""Installation settings (issue 2 §2).

Values come, from highest to lowest priority, from keyword arguments, environment variables
prefixed ``CLOUDPBX_`` (``CLOUDPBX_DATABASE_URL``, ``CLOUDPBX_HTTP_PORT`` …), an optional TOML
file (``cloudpbx.toml`` in the working directory, or the path in ``CLOUDPBX_CONFIG``) and the
defaults below.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from cloudpbx.numbers import NumberingPlan

DEFAULT_EMERGENCY = ("112", "101", "102", "103", "104")


def _toml_path() -> Path:
    return Path(os.environ.get("CLOUDPBX_CONFIG", "cloudpbx.toml"))


class Settings(BaseSettings):
    """Everything an operator may tune; see docs/operations.md for each value."""

    model_config = SettingsConfigDict(env_prefix="CLOUDPBX_", extra="forbid")

    data_dir: Path = Path("var")
    database_url: str = ""
    secret_key: str = ""

    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=1, le=65535)
    sip_host: str = "0.0.0.0"  # noqa: S104 - a PBX listens for phones on every interface
    sip_port: int = Field(5060, ge=1, le=65535)
    sip_tls_port: int = Field(5061, ge=1, le=65535)
    sip_ws_port: int = Field(5066, ge=1, le=65535)
    # Servers behind 1:1 NAT advertise their public address in Via/Contact/SDP.
    advertised_sip_address: str | None = None
    advertised_media_address: str | None = None
    rtp_port_min: int = Field(10000, ge=1024, le=65534)
    rtp_port_max: int = Field(20000, ge=1025, le=65535)
    sip_realm: str = "cloudpbx"
    # The SIP engine (issue 5): `cloudpbx run` starts it with the API unless this is false.
    sip_enabled: bool = True
    # RTP inactivity: a bridged party silent this long ends the call (dead phones, NAT loss).
    rtp_timeout_s: float = Field(60.0, ge=5.0)
    # DP-4 "timeout meaning": a ring step with timeout 0 rings this long.
    ring_max_s: int = Field(120, ge=1)

    media_dir: Path | None = None
    recordings_dir: Path | None = None

    # VM-1: voicemail messages are e-mailed through this SMTP server (no host: no mail).
    smtp_host: str | None = None
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_from: str = "cloudpbx@localhost"
    smtp_starttls: bool = False
    smtp_user: str | None = None
    smtp_password: str | None = None

    # CRM webhooks (docs/webhooks.md): allow URLs resolving to loopback/private/link-local
    # addresses. Off by default: a client could otherwise make the server call its own LAN (SSRF).
    webhooks_allow_private: bool = False

    default_timezone: str = "Europe/Moscow"
    # PRODUCT.md §3a: installation country and emergency numbers.
    country_code: str = "7"
    national_prefix: str = "8"
    international_prefix: str = "810"
    # A comma list in the environment (CLOUDPBX_EMERGENCY_NUMBERS=112,101), not JSON.
    emergency_numbers: Annotated[tuple[str, ...], NoDecode] = DEFAULT_EMERGENCY

    session_ttl_seconds: int = Field(8 * 3600, ge=60)
    cookie_secure: bool = True
    login_max_failures: int = Field(5, ge=1)
    login_window_seconds: int = Field(300, ge=1)
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1024)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_toml_path())
        return (init_settings, env_settings, toml)

    @field_validator("emergency_numbers", mode="before")
    @classmethod
    def _split_emergency(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _derive(self) -> Settings:
        if self.rtp_port_min >= self.rtp_port_max:
            raise ValueError("rtp_port_min must be below rtp_port_max")
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'cloudpbx.db').resolve()}"
        if self.media_dir is None:
            self.media_dir = self.data_dir / "media"
        if self.recordings_dir is None:
            self.recordings_dir = self.data_dir / "recordings"
        if not self.secret_key:
            self.secret_key = _load_or_create_secret(self.data_dir)
        return self

    @property
    def numbering_plan(self) -> NumberingPlan:
        return NumberingPlan(
            country_code=self.country_code,
            national_prefix=self.national_prefix,
            international_prefix=self.international_prefix,
            emergency_numbers=frozenset(self.emergency_numbers),
        )


def _load_or_create_secret(data_dir: Path) -> str:
    """A random key kept in the data directory, so restarts keep sessions and SIP secrets."""
    path = data_dir / "secret.key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
