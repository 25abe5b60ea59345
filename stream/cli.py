"""The `textroute` command line: training, export, the stream worker, the API."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

app = typer.Typer(
    name="textroute",
    help="Real-time text router: fine-tune BERT models, export them, route Kafka messages.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _register_all() -> None:
    from training.cli import register as register_training

    register_training(app)
    for module in ("training.export.cli", "stream.commands", "stream.api.cli"):
        try:
            mod = __import__(module, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                continue  # that area is not installed in this build
            raise
        mod.register(app)


_register_all()


def main() -> None:
    """Run the CLI; known errors print one clear line and exit 2, with no traceback."""
    from schemas.errors import SchemaError
    from training.errors import TrainingError

    known: tuple[type[BaseException], ...] = (TrainingError, SchemaError)
    try:
        from stream.errors import StreamError

        known = (*known, StreamError)
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
    except Exception as exc:  # click usage errors carry their own formatting
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
