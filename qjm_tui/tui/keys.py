"""The app's key bindings by id, and the config file's ``[keys]`` table applied to them.

Every binding of the app and of its widgets has an id (``set.cancel``, ``app.quit``, ...); the
``[keys]`` table maps ids to keys (``"set.cancel" = "ctrl+x"``, several keys comma separated)
and the app hands it to Textual's keymap support (``App.set_keymap``).
"""

from __future__ import annotations

from textual.dom import DOMNode

from qjm_tui.config import ConfigError


def _tui_classes(root: type[DOMNode]) -> list[type[DOMNode]]:
    """``root`` and every class of this package's app that derives from DOMNode."""
    found: list[type[DOMNode]] = [root]
    pending = list(DOMNode.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.startswith("qjm_tui.tui") and cls not in found:
            found.append(cls)
    return found


def default_keys(app_class: type[DOMNode]) -> dict[str, str]:
    """Every binding id of the app (``app_class``) and its widgets, with its built-in key(s),
    sorted by id."""
    keys: dict[str, list[str]] = {}
    for cls in _tui_classes(app_class):
        found: dict[str, list[str]] = {}
        for key, bindings in cls._merge_bindings().key_to_bindings.items():
            for binding in bindings:
                if binding.id:
                    found.setdefault(binding.id, []).append(key)
        for binding_id, its_keys in found.items():
            keys.setdefault(binding_id, its_keys)
    return {binding_id: ",".join(its_keys) for binding_id, its_keys in sorted(keys.items())}


def checked_keymap(keys: dict[str, str], app_class: type[DOMNode],
                   where: str = "configuration") -> tuple[dict[str, str], list[str]]:
    """The ``[keys]`` entries that name a known binding, and one message per entry that does not
    (saying where: the config file)."""
    known = default_keys(app_class)
    good = {binding_id: key for binding_id, key in keys.items() if binding_id in known}
    problems = [f"{where}: [keys] {binding_id!r}: no binding has this id (known: {', '.join(known)})"
                for binding_id in keys if binding_id not in known]
    return good, problems


def effective_keys(keys: dict[str, str], app_class: type[DOMNode],
                   where: str = "configuration") -> dict[str, str]:
    """Each binding id with the key(s) it has once ``keys`` is applied; an unknown id in
    ``keys`` is a :class:`ConfigError` naming it."""
    good, problems = checked_keymap(keys, app_class, where)
    if problems:
        raise ConfigError(problems[0])
    return {**default_keys(app_class), **good}
