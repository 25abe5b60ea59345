"""`python -m stream`: only the stream's commands, so a torch-free worker image can run them."""

from __future__ import annotations

import typer

from stream._cli_runner import run_app
from stream.commands import register

app = typer.Typer(
    name="textroute-stream",
    help="The textroute stream: embedded broker, routing worker, produce, tail, demo.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
register(app)


def main() -> None:
    """Run the stream commands; known errors print one clear line and exit 2, with no traceback."""
    run_app(app)


if __name__ == "__main__":
    main()
