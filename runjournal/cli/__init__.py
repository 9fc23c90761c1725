"""The ``runjournal`` command: one app, its verbs registered here explicitly.

``common`` holds the global options and what every verb shares; each verb module
(``running``, ``auditing``, ``checkpointing``) records its verbs in a ``Verbs``
and ``build_app`` adds them, so importing a module changes no app.
"""

from __future__ import annotations

import typer

from . import auditing, checkpointing, running
from .common import new_app


def build_app() -> typer.Typer:
    """The ``runjournal`` app with every verb."""
    app = new_app()
    for module in (auditing, checkpointing, running):
        module.verbs.register(app)
    return app


app = build_app()


def main() -> None:
    """Console-script entry point."""
    from ..app import logs

    logs.configure()  # the CLI owns its process; the library never configures logging
    app()


__all__ = ["app", "build_app", "main"]
