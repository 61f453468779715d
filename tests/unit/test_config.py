"""Installation settings from CLOUDPBX_* variables and cloudpbx.toml (issue 2 §2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from cloudpbx.config import Settings


def test_defaults_derive_paths_and_secret(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'cloudpbx.db'}"
    assert settings.media_dir == tmp_path / "media"
    assert len(settings.secret_key) > 40
    # The generated key is kept, so a restart can still open sealed SIP secrets.
    assert Settings(data_dir=tmp_path).secret_key == settings.secret_key
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600


def test_environment_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDPBX_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CLOUDPBX_HTTP_PORT", "9090")
    monkeypatch.setenv("CLOUDPBX_SIP_PORT", "5070")
    monkeypatch.setenv("CLOUDPBX_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("CLOUDPBX_EMERGENCY_NUMBERS", "112,911")
    settings = Settings()
    assert (settings.http_port, settings.sip_port) == (9090, 5070)
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert settings.emergency_numbers == ("112", "911")
    assert settings.numbering_plan.emergency_numbers == frozenset({"112", "911"})


def test_toml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "cloudpbx.toml"
    config.write_text(
        f'data_dir = "{tmp_path}"\nadvertised_sip_address = "203.0.113.7"\n'
        "rtp_port_min = 30000\nrtp_port_max = 30100\n"
    )
    monkeypatch.setenv("CLOUDPBX_CONFIG", str(config))
    settings = Settings()
    assert settings.advertised_sip_address == "203.0.113.7"
    assert (settings.rtp_port_min, settings.rtp_port_max) == (30000, 30100)


@pytest.mark.parametrize(
    ("field", "value"),
    [("http_port", 0), ("sip_port", 70000), ("rtp_port_min", 100), ("unknown_option", 1)],
)
def test_bad_values_name_the_setting(tmp_path: Path, field: str, value: int) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(data_dir=tmp_path, **{field: value})
    assert field in str(info.value)


def test_rtp_range_must_be_ordered(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="rtp_port_min"):
        Settings(data_dir=tmp_path, rtp_port_min=20000, rtp_port_max=10000)
