"""`python -m stream`: only the stream's commands, so a torch-free worker image can run them."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from stream.commands import register

app = typer.Typer(
    name="textroute-stream",
    help="The textroute stream: embedded broker, routing worker, produce, tail, demo.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
register(app)


def main() -> None:
    """Run the stream commands; known errors print one line and exit 2, with no traceback."""
    from schemas.errors import SchemaError
    from stream.errors import StreamError

    known: tuple[type[Exception], ...] = (StreamError, SchemaError)
    try:
        from training.errors import TrainingError  # the demo trains models when it has to

        known = (*known, TrainingError)
    except ModuleNotFoundError:
        pass
    try:
        app(standalone_mode=False)
    except known as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {type(exc).__name__}: {exc}")
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
