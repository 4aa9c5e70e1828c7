"""Where the pieces meet: the job manager users get, wired to the backend registry and the
configuration file.

The core's :class:`qjm_tui.core.manager.JobManager` is given what it depends on; this module
gives it the built-in backends (:mod:`qjm_tui.backends.registry`) and the user's
:class:`~qjm_tui.config.Config`, so ``JobManager()``, ``JobManager(path)`` and
``JobManager(path, config=Config(executor="threads"))`` work with no further setup.
"""

from __future__ import annotations

import os
from typing import Any

from qjm_tui.config import Config, load_config
from qjm_tui.core import manager as core
from qjm_tui.core import store as st
from qjm_tui.core.ports import BackendFactory, ExecutionBackend


def registry_backends(config: Config) -> BackendFactory:
    """A backend factory over the built-in registry, with ``config``'s executor, limits and
    IBM credentials."""

    def build(backend: Any) -> ExecutionBackend:
        from qjm_tui.backends.registry import resolve

        return resolve(backend, config=config)

    return build


class JobManager(core.JobManager):
    """The job manager, wired to the built-in backends and the configuration file.

    ``config`` defaults to the user's configuration (``load_config()``); ``store`` defaults to
    the store it names. Every keyword of :class:`qjm_tui.core.manager.JobManager` (``backends``,
    ``clock``, ``now``, ``new_id``, ``retry_policy``) can still be given to replace a piece.
    """

    def __init__(self, store: st.Store | str | os.PathLike[str] | None = None, *,
                 config: Config | None = None, backends: BackendFactory | None = None,
                 **kwargs: Any) -> None:
        config = config if config is not None else load_config()
        if store is None:
            store = config.store_path()
        super().__init__(store, config=config, backends=backends or registry_backends(config),
                         **kwargs)
