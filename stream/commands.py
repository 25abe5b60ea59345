"""`textroute broker|worker|produce|tail|demo|schemas|promote|rollback|models`: the stream's
commands."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from schemas.messages import MessageKind
from stream.user_files import InvalidRows

if TYPE_CHECKING:
    from stream.promotion import GateReport
    from stream.samples import SampleRecord
    from stream.user_files import FileReport

console = Console()
err = Console(stderr=True)
Opt = typer.Option

BootstrapOpt = Annotated[
    str | None,
    Opt(
        "--bootstrap",
        "-b",
        help="Kafka host:port list; default TEXTROUTE_BROKER_BOOTSTRAP_SERVERS.",
    ),
]


def _settings(cls: type[Any], **overrides: Any) -> Any:
    """Settings from the environment with the flags the user gave on top; clear errors."""
    from pydantic import ValidationError

    from stream._pydantic import summarize_validation_error
    from stream.errors import StreamConfigError

    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return cls(**given)
    except ValidationError as exc:
        raise StreamConfigError(
            f"invalid {cls.__name__}: {summarize_validation_error(exc)}"
        ) from exc


def _broker(bootstrap: str | None) -> Any:
    from stream.config import BrokerSettings

    return _settings(BrokerSettings, bootstrap_servers=bootstrap)


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM stops the broker the way Ctrl-C does.
    raise KeyboardInterrupt


def broker_command(
    port: Annotated[int | None, Opt(help="Port to listen on (0 = any free port).")] = None,
    host: Annotated[str | None, Opt(help="Interface to listen on.")] = None,
    log_file: Annotated[Path | None, Opt(help="Write the broker's output here.")] = None,
) -> None:
    """Run the embedded tansu broker (memory only) on localhost until Ctrl-C."""
    import signal

    from stream.broker import EmbeddedBroker
    from stream.config import EmbeddedBrokerSettings

    settings = _settings(EmbeddedBrokerSettings, port=port, host=host, log_file=log_file)
    broker = EmbeddedBroker(settings)
    signal.signal(signal.SIGTERM, _interrupt)
    with broker:
        console.print(
            f"[green]tansu broker ready[/] at [bold]{broker.bootstrap}[/] (pid {broker.pid}); "
            f"export TEXTROUTE_BROKER_BOOTSTRAP_SERVERS={broker.bootstrap}. Ctrl-C stops it."
        )
        try:
            code = broker.wait()
        except KeyboardInterrupt:
            console.print("stopping broker")
            return
    raise typer.Exit(code or 1)


def worker_command(
    bootstrap: BootstrapOpt = None,
    classifier: Annotated[
        Path | None, Opt(help="Classifier artifact dir (default models/classifier).")
    ] = None,
    ner: Annotated[Path | None, Opt(help="NER artifact dir (default models/ner).")] = None,
    no_ner: Annotated[bool, Opt("--no-ner", help="Route without entities.")] = False,
    model: Annotated[
        Path | None,
        Opt(
            help="One classify-and-tag artifact (`textroute train multitask`) in place of "
            "--classifier and --ner: class and entities from one encoder pass per message."
        ),
    ] = None,
    rules: Annotated[Path | None, Opt(help="Routing rules YAML (default: packaged).")] = None,
    pipelines: Annotated[
        Path | None,
        Opt(
            help="Pipelines YAML: models, rules and text handling per message kind (see "
            "deploy/pipelines.example.yaml); replaces --classifier, --ner, --model and --rules."
        ),
    ] = None,
    shadow_classifier: Annotated[
        Path | None,
        Opt(
            help="A candidate classifier run beside the active one on every message, never "
            "routed by; its answers go to the shadow topic (e.g. HOME/shadow of a model home)."
        ),
    ] = None,
    batch_size: Annotated[int | None, Opt(help="Max messages per batch.")] = None,
    batch_wait: Annotated[float | None, Opt(help="Max seconds to fill a batch.")] = None,
    app_id: Annotated[str | None, Opt(help="Faust app id = consumer group id.")] = None,
    metrics_port: Annotated[int | None, Opt(help="Serve Prometheus /metrics here.")] = None,
    log_level: Annotated[str | None, Opt(help="DEBUG, INFO, WARNING or ERROR.")] = None,
    console_logs: Annotated[
        bool, Opt("--console-logs", help="Human-readable logs instead of JSON lines.")
    ] = False,
) -> None:
    """Route messages from the inbound topics until SIGTERM (graceful) or SIGKILL."""
    from stream.config import WorkerSettings
    from stream.worker import run_worker

    settings = _settings(
        WorkerSettings,
        broker=_broker(bootstrap),
        classifier_dir=classifier,
        model_dir=model,
        rules_path=rules,
        pipelines_path=pipelines,
        shadow_classifier_dir=shadow_classifier,
        batch_size=batch_size,
        batch_wait_s=batch_wait,
        app_id=app_id,
        metrics_port=metrics_port,
        log_level=log_level.upper() if log_level else None,
        log_json=False if console_logs else None,
    )
    if no_ner:
        settings = settings.model_copy(update={"ner_dir": None})
    elif ner is not None:
        settings = settings.model_copy(update={"ner_dir": ner})
    run_worker(settings)


def produce_command(
    file: Annotated[
        Path | None,
        typer.Argument(
            help="Wire-format JSON-lines file sent byte for byte (bad lines reach the "
            "dead-letter topic); omit for samples. For your own data use --file."
        ),
    ] = None,
    kind: Annotated[
        MessageKind | None,
        Opt(help="Kind of every message of --file (required) or FILE (else each line's 'kind')."),
    ] = None,
    user_file: Annotated[
        Path | None,
        Opt(
            "--file",
            "-f",
            help="Your own CSV (.csv, .tsv) or JSON-lines (.jsonl, .ndjson) file of --kind "
            "messages, UTF-8: columns named like the kind's fields map themselves.",
        ),
    ] = None,
    maps: Annotated[
        list[str] | None,
        Opt("--map", metavar="FIELD=COLUMN", help="Take FIELD from COLUMN (repeatable)."),
    ] = None,
    constants: Annotated[
        list[str] | None,
        Opt("--set", metavar="FIELD=VALUE", help="FIELD is VALUE in every row (repeatable)."),
    ] = None,
    defaults: Annotated[
        list[str] | None,
        Opt(
            "--default",
            metavar="FIELD=VALUE",
            help="FIELD is VALUE where the row's is blank or missing (repeatable).",
        ),
    ] = None,
    value_maps: Annotated[
        list[str] | None,
        Opt(
            "--value-map",
            metavar="FIELD:FROM=TO",
            help="Replace FIELD's value FROM by TO, e.g. priority:medium=normal (repeatable).",
        ),
    ] = None,
    id_column: Annotated[
        str | None,
        Opt(help="Column of message ids (default: 'id' if present, else a hash of the row)."),
    ] = None,
    invalid: Annotated[
        InvalidRows,
        Opt(help="Rows that make no valid message: reported and skipped, or sent as they are."),
    ] = InvalidRows.SKIP,
    limit: Annotated[int | None, Opt(min=1, help="Read only the first N rows of --file.")] = None,
    samples: Annotated[int, Opt(help="Number of generated sample messages.")] = 30,
    malformed_ratio: Annotated[float, Opt(help="Share of malformed samples.")] = 0.1,
    seed: Annotated[int, Opt(help="Sample generator seed.")] = 0,
    id_prefix: Annotated[str, Opt(help="Prefix of generated message ids.")] = "msg",
    bootstrap: BootstrapOpt = None,
) -> None:
    """Send sample messages (mixed kinds, some malformed), your own CSV/JSON-lines file of one
    kind (--file), or a wire-format JSON-lines file to the inbound topics."""
    from stream.config import TopicSettings, WorkerSettings
    from stream.inputs import records_from_jsonl, to_outbound
    from stream.samples import sample_records
    from stream.topics import ensure_topics, produce, worker_topic_limits

    broker, topics = _broker(bootstrap), _settings(TopicSettings)
    limits = worker_topic_limits(_settings(WorkerSettings, topics=topics))
    report = None
    records: Iterable[SampleRecord]
    if user_file is not None:
        if file is not None:
            raise typer.BadParameter("give FILE or --file, not both")
        if kind is None:
            raise typer.BadParameter("--file needs --kind (email, ticket or article)")
        report, records = _user_file_records(
            user_file, kind, maps, constants, defaults, value_maps, id_column, invalid, limit
        )
    elif file is not None:
        records = records_from_jsonl(file, kind)
    else:
        records = list(
            sample_records(samples, malformed_ratio=malformed_ratio, seed=seed, id_prefix=id_prefix)
        )

    async def send() -> int:
        await ensure_topics(
            broker, topics.all_topics(), topics.partitions, topics.replication, configs=limits
        )
        # One record at a time, so a big file is read as it is sent, never held whole.
        return await produce(broker, (to_outbound([r], topics)[0] for r in records))

    sent = asyncio.run(send())
    where = f"to {broker.bootstrap_servers}"
    if report is None:
        console.print(f"sent [bold]{sent}[/] messages {where}")
        return
    kind_name = report.kind.value
    if report.invalid:
        fate = "skipped" if invalid is InvalidRows.SKIP else "sent as they are, to be dead-lettered"
        bad = f"{report.invalid} of {report.rows} rows make no valid {kind_name} message"
        err.print(f"{bad} ({fate}):")
        for example in report.examples:
            err.print(f"  {example}", markup=False, highlight=False)
    skipped = report.invalid if invalid is InvalidRows.SKIP else 0
    console.print(f"sent [bold]{sent}[/] {kind_name} messages {where}, skipped {skipped}")


def _user_file_records(
    path: Path,
    kind: MessageKind,
    maps: list[str] | None,
    constants: list[str] | None,
    defaults: list[str] | None,
    value_maps: list[str] | None,
    id_column: str | None,
    invalid: InvalidRows,
    limit: int | None,
) -> tuple[FileReport, Iterator[SampleRecord]]:
    """The report to fill and the lazy records of `textroute produce --file`; the mapping is
    checked against the file's columns here, before anything is sent."""
    from stream.user_files import (
        FileReport,
        UserFile,
        file_records,
        parse_assignments,
        parse_value_maps,
        plan_fields,
    )

    source = UserFile.open(path)
    fields = plan_fields(
        kind,
        source.columns,
        maps=parse_assignments(maps or [], "--map"),
        constants=parse_assignments(constants or [], "--set"),
        defaults=parse_assignments(defaults or [], "--default"),
        values=parse_value_maps(value_maps or [], "--value-map"),
        id_column=id_column,
        where=path.name,
    )
    report = FileReport(kind)

    def progress(done: FileReport) -> None:
        err.print(f"{path.name}: {done.rows:,} rows read, {done.invalid:,} invalid")

    records = file_records(
        source, fields, invalid=invalid, limit=limit, report=report, progress=progress
    )
    return report, records


def tail_command(
    follow: Annotated[bool, Opt("--follow/--no-follow", help="Keep watching.")] = True,
    from_beginning: Annotated[
        bool, Opt("--from-beginning/--from-end", help="Start at the oldest record.")
    ] = True,
    dead_letters: Annotated[
        bool, Opt("--dead-letters/--no-dead-letters", help="Also show the dead-letter topic.")
    ] = True,
    rows: Annotated[int, Opt(help="Rows kept on screen while following.")] = 25,
    idle: Annotated[float, Opt(help="Without --follow: stop after this many idle seconds.")] = 2.0,
    bootstrap: BootstrapOpt = None,
) -> None:
    """Watch routed events (and dead letters) as a readable table."""
    from stream.config import TopicSettings
    from stream.tail import tail

    broker, topics = _broker(bootstrap), _settings(TopicSettings)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            tail(
                broker,
                topics,
                console,
                follow=follow,
                from_beginning=from_beginning,
                dead_letters=dead_letters,
                rows=rows,
                idle_s=idle,
            )
        )


def demo_command(
    messages: Annotated[int | None, Opt(help="Messages to send.")] = None,
    malformed_ratio: Annotated[float | None, Opt(help="Share of malformed messages.")] = None,
    models_dir: Annotated[
        Path | None, Opt(help="Where models are found or trained (default models/).")
    ] = None,
    bootstrap: BootstrapOpt = None,
) -> None:
    """Everything at once: broker, models (trained if missing), worker, messages, results."""
    from stream.demo import DemoSettings, run_demo

    settings = _settings(
        DemoSettings,
        messages=messages,
        malformed_ratio=malformed_ratio,
        models_dir=models_dir,
        bootstrap_servers=bootstrap,
    )
    raise typer.Exit(run_demo(settings, console))


def schemas_command(
    out_dir: Annotated[Path, typer.Argument(help="Directory to write *.schema.json into.")],
) -> None:
    """Export the JSON Schema of every wire message (inbound, routing event, dead letter)."""
    from schemas.jsonschema import export_json_schemas

    for path in export_json_schemas(out_dir):
        console.print(f"wrote {path}")


HomeOpt = Annotated[
    Path,
    Opt(
        "--home",
        help="Model home: versions/<version>/, current -> versions/<version> (point workers at "
        "HOME/current), history.jsonl.",
    ),
]


def promote_command(
    candidate: Annotated[Path, typer.Argument(help="The candidate artifact directory.")],
    home: HomeOpt,
    test: Annotated[
        Path | None,
        Opt(
            help="Labelled CSV/TSV/JSON-lines file of the test-set gate (default: the active "
            "model's eval data, when it is a local file)."
        ),
    ] = None,
    reviewed: Annotated[
        Path | None,
        Opt(help="Reviewers' corrections: a CSV with text and label columns (others ignored)."),
    ] = None,
    text_column: Annotated[
        str | None,
        Opt(
            help="Text column(s) of --test, comma-separated (default text; for the active "
            "model's eval data, its own columns)."
        ),
    ] = None,
    label_column: Annotated[
        str | None,
        Opt(help="Label column of --test (default label); a JSON list for multi-label models."),
    ] = None,
    margin: Annotated[
        float,
        Opt(help="Accuracy (multi-label: micro-F1) points the candidate may lose to the active."),
    ] = 0.5,
    skip_test_gate: Annotated[
        bool, Opt("--skip-test-gate", help="Promote without the test-set comparison.")
    ] = False,
    dry_run: Annotated[
        bool, Opt("--dry-run", help="Evaluate the gates only; change nothing.")
    ] = False,
    shadow: Annotated[
        bool,
        Opt(
            "--shadow",
            help="Point HOME/shadow at the candidate instead (artifact and parity gates only): "
            "workers with --shadow-classifier HOME/shadow run it beside the active model.",
        ),
    ] = False,
) -> None:
    """Gate a candidate model against the active one and make it current in the model home.

    Exit status 0: promoted (or, with --dry-run, every gate passed); 1: a gate failed and
    nothing changed; 2: invalid input."""
    from stream.model_home import ModelHome
    from stream.promotion import GateOptions, promote
    from stream.promotion import shadow as shadow_candidate

    columns = None
    if text_column is not None:
        columns = tuple(c.strip() for c in text_column.split(",") if c.strip()) or None
    options = GateOptions(
        test=test,
        reviewed=reviewed,
        text_columns=columns,
        label_column=label_column,
        margin=margin,
        skip_test_gate=skip_test_gate,
    )
    model_home = ModelHome(home)
    with _quiet_logs():
        if shadow:
            outcome = shadow_candidate(candidate, model_home)
        else:
            outcome = promote(candidate, model_home, options, dry_run=dry_run)
    report = outcome.report
    if report is None:
        console.print(f"{candidate} is the active version of {home} already; nothing to do")
        return
    _print_gates(report)
    if not report.passed:
        failures = report.failures()
        names = ", ".join(g.name for g in failures)
        why = f": {failures[0].detail}" if len(failures) == 1 else "; see the table"
        gate = "gate" if len(failures) == 1 else "gates"
        err.print(
            f"not promoted: the {names} {gate} failed{why}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        # SystemExit, not typer.Exit: run_app (standalone_mode=False) drops typer.Exit's code.
        sys.exit(1)
    version = report.candidate.version
    if outcome.entry is None:
        console.print(f"dry run: every gate passed; {version} not promoted")
        return
    if shadow:
        console.print(f"shadowing {report.candidate.name} {version} in {home}/shadow")
        return
    was = outcome.entry.from_version or "none"
    console.print(f"promoted {report.candidate.name} {version} in {home} (was {was})")


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """Only warnings from the libraries' structlog loggers (not each model load) while the
    gates run, unless logging was set up already; the defaults are back afterwards."""
    import logging

    import structlog

    if structlog.is_configured():
        yield
        return
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        yield
    finally:
        structlog.reset_defaults()


def _print_gates(report: GateReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    from stream.promotion import GateStatus

    styles = {GateStatus.PASS: "green", GateStatus.FAIL: "bold red", GateStatus.NOT_RUN: "red"}
    active = report.active_version or "none"
    table = Table(title=f"{report.candidate.name} {report.candidate.version} vs active {active}")
    for column in ("gate", "result", "candidate", "active", "detail"):
        table.add_column(column, overflow="fold")
    for gate in report.gates:
        style = styles.get(gate.status, "yellow")
        table.add_row(
            gate.name,
            f"[{style}]{gate.status.value}[/]",
            str(gate.candidate) if gate.candidate else "",
            str(gate.active) if gate.active else "",
            escape(gate.detail),
        )
    console.print(table)


def rollback_command(home: HomeOpt) -> None:
    """Make the version active before the current one (per the history) current again."""
    from stream.model_home import ModelHome

    entry = ModelHome(home).rollback()
    console.print(f"rolled back {home} from {entry.from_version} to {entry.to_version}")


def models_command(home: HomeOpt) -> None:
    """List the model home's versions, the active one marked."""
    from rich.markup import escape
    from rich.table import Table

    from stream.model_home import ModelHome

    versions = ModelHome(home).versions()
    if not versions:
        console.print(f"no versions installed in {home}")
        return
    table = Table(box=None)
    for column in ("", "version", "name", "task", "created", "test"):
        table.add_column(column)
    for v in versions:
        m = v.manifest
        if m is None:
            problem = f"[red]{escape(v.problem or '')}[/]"
            table.add_row("*" if v.active else "", v.version, problem, "", "", "")
            continue
        table.add_row(
            "*" if v.active else "",
            v.version,
            m.name,
            m.task.value,
            m.created_at.strftime("%Y-%m-%d %H:%M"),
            _test_figure(m.metrics),
        )
    console.print(table)


def _test_figure(metrics: dict[str, Any]) -> str:
    """The test accuracy (micro-F1 for multi-label models) the manifest records, if any."""
    test = metrics.get("test")
    if not isinstance(test, dict):
        return ""
    for key, name in (("accuracy", "accuracy"), ("f1_micro", "micro-F1"), ("f1", "F1")):
        value = test.get(key)
        if isinstance(value, int | float):
            return f"{name} {100 * value:.2f}"
    return ""


def register(app: typer.Typer) -> None:
    """Add the stream's commands to the `textroute` app."""
    app.command("broker")(broker_command)
    app.command("worker")(worker_command)
    app.command("produce")(produce_command)
    app.command("tail")(tail_command)
    app.command("demo")(demo_command)
    app.command("schemas")(schemas_command)
    app.command("promote")(promote_command)
    app.command("rollback")(rollback_command)
    app.command("models")(models_command)
    from stream.review_commands import register as register_review

    register_review(app)  # feedback send|dataset|stats, review-store
