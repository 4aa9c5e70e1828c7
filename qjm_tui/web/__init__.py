"""The app in web browsers (``qjm serve``), on textual-serve: see :mod:`qjm_tui.web.server`.

An optional part of qjm (the ``web`` extra); nothing else in qjm imports it.
"""
