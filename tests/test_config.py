"""The configuration file: parsing, clear errors, environment overrides, masking, permissions."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from qjm_tui import config as config_mod
from qjm_tui.config import Config, ConfigError, load_config

TOKEN = "cfg-token-0123456789abcdef"


def _write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_full_file(tmp_path: Path) -> None:
    path = _write(tmp_path, f'''
default_backend = "emulator:max_jobs=3"
default_shots = 2000
executor = "threads"
store = "{tmp_path / 'x.sqlite'}"

[backends."aer:fake_manila"]
max_experiments_per_job = 50

[backends.emulator]
max_concurrent_jobs = 2

[retry]
max_attempts = 7
base_delay = 0.5

[ibm]
instance = "crn:abc"
''')
    config = load_config(path)
    assert config.default_backend == "emulator:max_jobs=3" and config.default_shots == 2000
    assert config.executor == "threads" and config.source == path
    assert config.backend_limits("aer:fake_manila") == {"max_experiments_per_job": 50}
    assert config.backend_limits("emulator") == {"max_concurrent_jobs": 2}
    assert config.retry_policy().max_attempts == 7 and config.retry_policy().base_delay == 0.5
    assert config.ibm == {"instance": "crn:abc"}


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    config = load_config(tmp_path / "none.toml")
    assert config == Config() and config.source is None


@pytest.mark.parametrize(("text", "words"), [
    ("default_shots = ", ["not valid TOML"]),
    ('default_backend = "aer"\ncolour = "blue"', ["unknown key 'colour'", "default_backend"]),
    ("default_shots = 0", ["default_shots must be a positive integer", "0"]),
    ('default_shots = "many"', ["default_shots must be a positive integer"]),
    ("executor = 3", ["executor must be a str"]),
    ("[backends.aer]\nmax_qubits = 3", ["unknown key 'max_qubits'", "[backends.'aer']"]),
    ("[backends.aer]\nmax_shots = -1", ["max_shots must be a positive integer"]),
    ("backends = 3", ["[backends] must be a table"]),
    ("[retry]\nmax_attempts = -2", ["[retry] max_attempts must be a non-negative number"]),
    ("[retry]\nforever = true", ["unknown key 'forever' in [retry]"]),
    ("[ibm]\ntoken = 5", ["[ibm] must be a table of strings"]),
    ('[ibm]\npassword = "x"', ["unknown key 'password' in [ibm]", "token"]),
])
def test_bad_files_are_clear(tmp_path: Path, text: str, words: list[str]) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(str(path))  # says which file
    for word in words:
        assert word in message


def test_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, 'default_backend = "basic"\ndefault_shots = 10\nexecutor = "threads"')
    monkeypatch.setenv("QJM_BACKEND", "aer:fake_manila")
    monkeypatch.setenv("QJM_SHOTS", "77")
    monkeypatch.setenv("QJM_EXECUTOR", "dask://127.0.0.1:8786")
    config = load_config(path)
    assert (config.default_backend, config.default_shots, config.executor) == \
        ("aer:fake_manila", 77, "dask://127.0.0.1:8786")
    monkeypatch.setenv("QJM_SHOTS", "lots")
    with pytest.raises(ConfigError, match="environment: QJM_SHOTS must be a positive integer"):
        load_config(path)


def test_config_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "default_shots = 5")
    monkeypatch.setenv("QJM_CONFIG", str(path))
    assert load_config().default_shots == 5


def test_store_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, f'store = "{tmp_path / "elsewhere.sqlite"}"')
    monkeypatch.delenv("QJM_HOME")
    assert load_config(path).store_path() == tmp_path / "elsewhere.sqlite"
    monkeypatch.setenv("QJM_HOME", str(tmp_path / "home"))
    assert load_config(path).store_path() == tmp_path / "home" / "qjm.sqlite"


def test_token_is_masked_everywhere(tmp_path: Path) -> None:
    path = _write(tmp_path, f'[ibm]\ntoken = "{TOKEN}"\ninstance = "crn:abc"')
    config = load_config(path)
    assert config.ibm["token"] == TOKEN  # available to the IBM adapters...
    masked = config.masked()
    assert masked["ibm"] == {"token": "***", "instance": "crn:abc"}
    for text in (str(masked), repr(config), str(config)):  # ...but never printed
        assert TOKEN not in text


def test_readable_token_file_warns_with_chmod(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, f'[ibm]\ntoken = "{TOKEN}"', mode=0o644)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # printed, not a Python warning: this cannot hide it
        load_config(path)
    said = capsys.readouterr().err
    assert said.startswith("qjm: warning: ") and f"chmod 600 {path}" in said and TOKEN not in said
    os.chmod(path, 0o600)
    config_mod._warned_readable.clear()
    load_config(path)
    # No token, no warning, however readable.
    plain = _write(tmp_path, 'default_backend = "aer"', mode=0o644)
    load_config(plain)
    assert capsys.readouterr().err == ""


def test_executor_object_is_masked_by_repr() -> None:
    class Pool:
        def __repr__(self) -> str:
            return "<Pool>"

    assert Config(executor=Pool()).masked()["executor"] == "<Pool>"
