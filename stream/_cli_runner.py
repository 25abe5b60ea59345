"""Run a typer app so that known errors print one clear line and exit 2, never a traceback."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.text import Text


def run_app(app: typer.Typer) -> None:
    """Invoke `app`; our errors exit 2 with their message, click usage errors keep their own."""
    from schemas.errors import TextrouteError

    try:
        # Without standalone mode click returns a command's `typer.Exit(code)` instead of
        # exiting with it: pass it on, or every failure would exit 0.
        code = app(standalone_mode=False)
    except TextrouteError as exc:
        # One line whatever the terminal width (soft_wrap), the message never read as markup.
        message = Text.assemble(("error:", "bold red"), f" {type(exc).__name__}: {exc}")
        Console(stderr=True, soft_wrap=True).print(message)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:
        usage = _usage_errors()
        if isinstance(exc, usage):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        raise
    if isinstance(code, int) and code:
        sys.exit(code)


def _usage_errors() -> tuple[type[Exception], ...]:
    """Click's usage errors: typer >= 0.20 raises those of its vendored copy of click."""
    import click

    try:
        from typer._click.exceptions import ClickException as TyperClickException
    except ImportError:  # an older typer that uses click itself
        return (click.ClickException,)
    return (click.ClickException, TyperClickException)
