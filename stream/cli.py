"""The `textroute` command line: training, export, the stream worker, the API."""

from __future__ import annotations

import typer

from stream._cli_runner import run_app

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
    run_app(app)


if __name__ == "__main__":
    main()
