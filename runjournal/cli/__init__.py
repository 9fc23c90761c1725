"""The ``runjournal`` command: one app, its verbs registered here explicitly.

``common`` holds the global options and what every verb shares; each verb module
(``running``, ``auditing``, ``checkpointing``) records its verbs in a ``Verbs``
and ``build_app`` adds them, so importing a module changes no app.

Every command is a whole process, so start-up is part of each verb's cost
(``python -m bench.cli`` measures it). The rule for the modules of this package:
at module level import only the standard library, ``typer`` and this package's
own cli modules; a verb imports the journal, the harness, the domain, rich and
the rest inside its function, only when it runs. ``--help`` then loads no more
than typer, and ``status`` and ``history`` never load the harness, asyncio or
the agents. ``tests/cli/test_startup.py`` checks what each of them imports.
"""

from __future__ import annotations

import typer

from . import auditing, checkpointing, debugging, running
from .common import new_app


def build_app() -> typer.Typer:
    """The ``runjournal`` app with every verb."""
    app = new_app()
    for module in (auditing, checkpointing, running, debugging):
        module.verbs.register(app)
    return app


app = build_app()


def main() -> None:
    """Console-script entry point."""
    from ..app import logs

    logs.configure()  # the CLI owns its process; the library never configures logging
    app()


__all__ = ["app", "build_app", "main"]
