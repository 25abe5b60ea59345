"""The `textroute` command line: training, export, the stream worker, the API."""

from __future__ import annotations

import logging
import os
import warnings

import typer

from stream._cli_runner import run_app

app = typer.Typer(
    name="textroute",
    help="Real-time text router: fine-tune BERT models, export them, route Kafka messages.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


#: Set to 1 (or pass --verbose) to see every library's warnings, load reports and progress bars.
VERBOSE_ENV = "TEXTROUTE_VERBOSE"


class _DropQuantizerAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def quiet_libraries() -> None:
    """Silence what libraries print that tells a user nothing: transformers' load reports and
    'Loading weights' bars, advisory warnings, datasets' per-step Map bars. Our own progress
    bars (training, evaluation, export, benchmarks) and results stay. Environment variables,
    so the libraries, imported later, and our subprocesses (the demo's) read them; a value the
    user set wins."""
    for name, value in (
        ("TRANSFORMERS_VERBOSITY", "error"),
        ("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1"),
        ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
        ("HF_DATASETS_DISABLE_PROGRESS_BARS", "1"),
    ):
        os.environ.setdefault(name, value)
    # ONNX Runtime's quantizer logs generic advice on the root logger at every export.
    logging.getLogger().addFilter(_DropQuantizerAdvice())
    warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.")
    warnings.filterwarnings("ignore", category=FutureWarning)


@app.callback()
def _root(
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Show every library's warnings, reports and progress bars."
    ),
) -> None:
    if verbose:
        os.environ[VERBOSE_ENV] = "1"  # the demo's subprocesses inherit it
    if os.environ.get(VERBOSE_ENV) != "1":
        quiet_libraries()


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
