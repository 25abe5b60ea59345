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


#: Entry-point group through which each installed package adds its commands (pyproject.toml).
COMMANDS_GROUP = "textroute.commands"
#: The order of the groups in `textroute --help`: the workflow's order; others follow by name.
HELP_ORDER = ("train", "export", "stream", "serve")


def _register_all() -> None:
    # Entry points keep this CLI from importing any package's commands by name: a serving
    # install without the training package simply has fewer commands.
    from importlib.metadata import entry_points

    entries = sorted(
        entry_points(group=COMMANDS_GROUP),
        key=lambda e: (
            HELP_ORDER.index(e.name) if e.name in HELP_ORDER else len(HELP_ORDER),
            e.name,
        ),
    )
    for entry in entries:
        try:
            register = entry.load()
        except ModuleNotFoundError as exc:
            if exc.name and entry.value.startswith(exc.name):
                continue  # that package is not installed in this build
            raise
        register(app)


_register_all()


def main() -> None:
    """Run the CLI; known errors print one clear line and exit 2, with no traceback."""
    run_app(app)


if __name__ == "__main__":
    main()
