"""Configuration: a TOML file plus environment overrides.

The file is ``$QJM_CONFIG``, else ``config.toml`` in the platform's user config folder for qjm.
Environment variables win over the file: ``QJM_HOME`` (store folder), ``QJM_BACKEND``,
``QJM_SHOTS``, ``QJM_EXECUTOR``. Example::

    default_backend = "aer"
    default_shots = 4000
    max_jobs_per_set = 10000        # a set needing more jobs is refused (a typo in shots, most often)
    max_job_seconds = 300           # each job's estimated time on a device within 5 minutes
                                    # (backends without instruction durations ignore it)
    max_circuit_file_mb = 200       # the largest circuit file read whole (OpenQASM of 50 MB is
                                    # real); QPY files are read a circuit at a time, any size
    executor = "processes"          # or "threads", or "dask://127.0.0.1:8786"
    store = "~/qjm/qjm.sqlite"

    [backends."ibm-runtime:ibm_brisbane"]
    max_experiments_per_job = 100
    max_concurrent_jobs = 3

    [retry]
    max_attempts = 5
    base_delay = 1.0
    max_delay = 60.0

    [keys]                          # remap the app's keys by binding id (`qjm config` lists them)
    "set.cancel" = "ctrl+x"

    [app]
    notify = "bell"                 # when a set finishes or fails, besides the app's own notice:
                                    # "bell", "osc9" or "osc777" (a desktop notification sent
                                    # through the terminal), or "none" (the default)

    [ibm]
    token = "..."                   # better: QISKIT_IBM_TOKEN; the file must then be chmod 600
    instance = "hub/group/project"  # or QISKIT_IBM_INSTANCE
    # channel = "ibm_quantum_platform", url = "...", account = "<saved account name>"

``executor`` may also be set to an executor object in code (``Config(executor=dask_client)``).
Limits in ``[backends."<spec>"]`` apply to that exact spec; ``[backends.<kind>]`` (such as
``[backends.emulator]``) to every spec of that kind without its own table.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qjm_tui.core.errors import JobManagerInputError
from qjm_tui.core.files import TooLarge, read_bounded

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

#: the most of a configuration file that is read
MAX_CONFIG_BYTES = 1_000_000
SECRET_KEYS = frozenset({"token", "api_key", "password", "secret"})
_RETRY_KEYS = {"max_attempts": int, "base_delay": float, "max_delay": float, "jitter": float,
               "max_poll_errors": int, "limit_wait": float}
_IBM_KEYS = ("token", "instance", "channel", "url", "account")
_BACKEND_KEYS = {"max_experiments_per_job": int, "max_shots": int, "max_concurrent_jobs": int,
                 "max_executions": int}
#: the app's ways of calling for attention, besides its own notice ([app] notify)
NOTIFY_CHOICES = ("none", "bell", "osc9", "osc777")


class ConfigError(JobManagerInputError):
    """The configuration file is not valid; the message names the file and the key."""


def config_path() -> Path:
    """Where the configuration file is looked for."""
    explicit = os.environ.get("QJM_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("qjm", appauthor=False)) / "config.toml"


def log_path() -> Path:
    """Where qjm writes its log (background runs write here)."""
    import platformdirs

    home = os.environ.get("QJM_HOME")
    base = Path(home).expanduser() if home else Path(platformdirs.user_log_dir("qjm", appauthor=False))
    return base / "qjm.log"


@dataclass
class Config:
    """The effective configuration."""

    default_backend: str = "aer"
    default_shots: int = 1024
    #: the most jobs one job set may need; a larger request is refused before anything is stored
    max_jobs_per_set: int = 10_000
    #: the most seconds one job may be estimated to take on the backend (None: not sized by time)
    max_job_seconds: float | None = None
    #: the largest circuit file qjm reads whole, in megabytes (a device or a FIFO is never read;
    #: a QPY file is read a circuit at a time and may be larger)
    max_circuit_file_mb: int = 200
    #: "processes", "threads", "dask://HOST:PORT", or an executor object (a Dask Client)
    executor: Any = "processes"
    store: Path | None = None
    backends: dict[str, dict[str, int]] = field(default_factory=dict)
    retry: dict[str, Any] = field(default_factory=dict)
    ibm: dict[str, str] = field(default_factory=dict)
    #: the app's binding ids remapped to keys (``"set.cancel" = "ctrl+x"``)
    keys: dict[str, str] = field(default_factory=dict)
    #: how the app calls for attention when a set finishes or fails, besides its own notice:
    #: one of :data:`NOTIFY_CHOICES` (``[app] notify``)
    notify: str = "none"
    source: Path | None = None

    def store_path(self) -> Path:
        """The store file: ``QJM_HOME`` wins, then the file's ``store``, then the default."""
        from qjm_tui.core.store import default_store_path

        if os.environ.get("QJM_HOME") or self.store is None:
            return default_store_path()
        return self.store

    def backend_limits(self, spec: str) -> dict[str, int]:
        """Limits the user set for this backend spec (they narrow what the backend declares)."""
        return dict(self.backends.get(spec, {}))

    def retry_policy(self) -> Any:
        """The engine's RetryPolicy with the user's settings applied."""
        from qjm_tui.core.retry import RetryPolicy

        return RetryPolicy(**self.retry)

    def __repr__(self) -> str:
        # The dataclass repr would print the [ibm] token.
        ibm = {k: ("***" if k in SECRET_KEYS and v else v) for k, v in self.ibm.items()}
        return (f"Config(default_backend={self.default_backend!r}, default_shots={self.default_shots!r}, "
                f"executor={self.executor!r}, store={self.store!r}, backends={self.backends!r}, "
                f"retry={self.retry!r}, ibm={ibm!r}, source={self.source!r})")

    def masked(self) -> dict[str, Any]:
        """The configuration as a dict with every secret replaced by ``***``."""
        return {
            "config_file": str(self.source) if self.source else None,
            "default_backend": self.default_backend,
            "default_shots": self.default_shots,
            "max_jobs_per_set": self.max_jobs_per_set,
            "max_job_seconds": self.max_job_seconds,
            "max_circuit_file_mb": self.max_circuit_file_mb,
            "executor": self.executor if isinstance(self.executor, str) else repr(self.executor),
            "store": str(self.store_path()),
            "log": str(log_path()),
            "backends": self.backends,
            "retry": self.retry,
            "ibm": {k: ("***" if k in SECRET_KEYS and v else v) for k, v in self.ibm.items()},
            "keys": self.keys,
            "notify": self.notify,
        }


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read the configuration file (if any) and apply environment overrides."""
    file = Path(path).expanduser() if path is not None else config_path()
    raw: dict[str, Any] = {}
    if file.exists():
        try:
            # Bounded: QJM_CONFIG=/dev/null is fine, /dev/zero must not fill memory.
            text = read_bounded(file, MAX_CONFIG_BYTES, regular_only=False).decode("utf-8")
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML: {exc}", str(file)) from None
        except UnicodeDecodeError:
            raise ConfigError("not valid TOML: it is not UTF-8 text", str(file)) from None
        except TooLarge:
            raise ConfigError(f"larger than {MAX_CONFIG_BYTES // 1_000_000} MB; is it the right "
                              "file?", str(file)) from None
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror}", str(file)) from None
    config = _from_dict(raw, file if file.exists() else None)
    # Judged on the file itself: a token in the environment does not make a loose file safe.
    if config.source is not None and any(k in SECRET_KEYS for k in config.ibm):
        _warn_if_readable(config.source)
    _apply_env(config)
    return config


def _from_dict(raw: dict[str, Any], source: Path | None) -> Config:
    where = str(source) if source else "configuration"
    known = {"default_backend", "default_shots", "max_jobs_per_set", "max_job_seconds",
             "max_circuit_file_mb", "executor",
             "store", "backends", "retry", "ibm", "keys", "app"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})", where)
    config = Config(source=source)
    if "default_backend" in raw:
        config.default_backend = _typed(raw, "default_backend", str, where)
    if "default_shots" in raw:
        config.default_shots = _positive(raw, "default_shots", where)
    if "max_jobs_per_set" in raw:
        config.max_jobs_per_set = _positive(raw, "max_jobs_per_set", where)
    if "max_job_seconds" in raw:
        value = raw["max_job_seconds"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise ConfigError(f"max_job_seconds must be a positive number of seconds, got {value!r}", where)
        config.max_job_seconds = float(value)
    if "max_circuit_file_mb" in raw:
        config.max_circuit_file_mb = _positive(raw, "max_circuit_file_mb", where)
    if "executor" in raw:
        config.executor = _executor(_typed(raw, "executor", str, where), "executor", where)
    if "store" in raw:
        config.store = Path(_typed(raw, "store", str, where)).expanduser()
    backends = raw.get("backends", {})
    if not isinstance(backends, dict):
        raise ConfigError("[backends] must be a table of backend specs", where)
    for spec, limits in backends.items():
        if not isinstance(limits, dict):
            raise ConfigError(f"[backends.{spec!r}] must be a table", where)
        for key in limits:
            if key not in _BACKEND_KEYS:
                raise ConfigError(f"unknown key {key!r} in [backends.{spec!r}] "
                                  f"(known: {', '.join(_BACKEND_KEYS)})", where)
        config.backends[spec] = {k: _positive(limits, k, f"{where} [backends.{spec!r}]")
                                 for k in limits}
    retry = raw.get("retry", {})
    if not isinstance(retry, dict):
        raise ConfigError("[retry] must be a table", where)
    for key, value in retry.items():
        kind = _RETRY_KEYS.get(key)
        if kind is None:
            raise ConfigError(f"unknown key {key!r} in [retry] (known: {', '.join(_RETRY_KEYS)})", where)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"[retry] {key} must be a non-negative number, got {value!r}", where)
        config.retry[key] = kind(value)
    ibm = raw.get("ibm", {})
    if not isinstance(ibm, dict) or not all(isinstance(v, str) for v in ibm.values()):
        raise ConfigError("[ibm] must be a table of strings", where)
    for key in ibm:
        if key not in _IBM_KEYS:
            raise ConfigError(f"unknown key {key!r} in [ibm] (known: {', '.join(_IBM_KEYS)})", where)
    config.ibm = dict(ibm)
    app = raw.get("app", {})
    if not isinstance(app, dict):
        raise ConfigError("[app] must be a table", where)
    for key, value in app.items():
        if key != "notify":
            raise ConfigError(f"unknown key {key!r} in [app] (known: notify)", where)
        if value not in NOTIFY_CHOICES:
            raise ConfigError(f"[app] notify must be one of {', '.join(map(repr, NOTIFY_CHOICES))}, "
                              f"got {value!r}", where)
        config.notify = value
    keys = raw.get("keys", {})
    if not isinstance(keys, dict):
        raise ConfigError("[keys] must be a table of binding ids and keys", where)
    for binding_id, key in keys.items():
        if not isinstance(key, str) or not key.strip():
            raise ConfigError(f"[keys] {binding_id!r} must be a key such as 'x' or 'ctrl+x' (several "
                              f"comma separated), got {key!r}", where)
    config.keys = dict(keys)
    return config


def _typed(raw: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = raw[key]
    if not isinstance(value, kind):
        raise ConfigError(f"{key} must be a {kind.__name__}, got {value!r}", where)
    return value


def _executor(value: str, key: str, where: str) -> str:
    """``value`` if it names an executor qjm knows, so a typo fails before anything runs."""
    if value in ("processes", "threads") or value.startswith("dask://"):
        return value
    raise ConfigError(f"{key} must be 'processes', 'threads' or 'dask://HOST:PORT', got {value!r}", where)


def _positive(raw: dict[str, Any], key: str, where: str) -> int:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key} must be a positive integer, got {value!r}", where)
    return value


def _apply_env(config: Config) -> None:
    if os.environ.get("QJM_BACKEND"):
        config.default_backend = os.environ["QJM_BACKEND"]
    if os.environ.get("QJM_EXECUTOR"):
        config.executor = _executor(os.environ["QJM_EXECUTOR"], "QJM_EXECUTOR", "environment")
    shots = os.environ.get("QJM_SHOTS")
    if shots:
        if not shots.isdigit() or int(shots) < 1:
            raise ConfigError(f"QJM_SHOTS must be a positive integer, got {shots!r}", "environment")
        config.default_shots = int(shots)


#: config files already warned about in this process (a command loads its config more than once)
_warned_readable: set[Path] = set()


def _warn_if_readable(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH) and path.resolve() not in _warned_readable:
        _warned_readable.add(path.resolve())
        # Printed, not a Python warning: PYTHONWARNINGS=ignore (which many Qiskit users set to
        # quiet deprecations) must not hide a token others can read.
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(f"qjm: warning: {path} holds a token and can be read by other users; "
                             f"run: chmod 600 {path}\n")
            sys.stderr.flush()
