"""Review-loop benchmark: one feedback cycle with the worker up, and its gain on unseen traffic.

A classifier trained on a small part of a labelled set routes a stream drawn from the rest;
reviewers (simulated from the true labels) correct the messages sent to human review and a
small random sample of the others; one cycle then runs while the worker keeps routing:

  1. join     `textroute feedback dataset`: the corrections joined with the archived texts
  2. retrain  `textroute train classify --init-from` the active model, with a replay sample
              of its training rows, then `textroute export` (int8 behind the parity gates)
  3. shadow   `textroute promote --shadow`: the candidate runs beside the active model on live
              traffic, its answers on the shadow topic
  4. promote  `textroute promote` through the gates (test set, held-out reviewed messages,
              parity); the worker hot-reloads it

The gain is measured on the messages routed after the promotion, which neither the first
training nor the retraining saw: the promoted model's live accuracy on them beside the first
model's accuracy on the same messages (paired), with a bootstrap interval.

    python bench/feedback.py                      # AG News (../shared/data), MiniLM
    python bench/feedback.py --smoke              # tiny models and texts: the plumbing only
    python bench/feedback.py --write-results      # replace the section in bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

from schemas.artifact import read_manifest
from schemas.entities import Classification
from schemas.events import RoutingEvent
from schemas.feedback import ShadowEvent
from schemas.messages import ArticleMessage
from stream.broker import EmbeddedBroker
from stream.config import BrokerSettings, EmbeddedBrokerSettings, TopicSettings
from stream.topics import OutboundRecord, TopicFollower, ensure_topics, produce

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "ag_news"
RESULTS = REPO / "bench" / "RESULTS.md"
LABELS = ("World", "Sports", "Business", "Sci/Tech")
REVIEW_QUEUE = "human-review"
SECTION = "## Review loop: one feedback cycle (`bench/feedback.py`)"
console = Console(stderr=True)


@dataclass
class Row:
    id: str
    text: str
    label: str


@dataclass
class Step:
    name: str
    seconds: float
    detail: str = ""


@dataclass
class Run:
    steps: list[Step] = field(default_factory=list)
    figures: dict[str, object] = field(default_factory=dict)

    def timed(self, name: str, start: float, detail: str = "") -> None:
        self.steps.append(Step(name, time.monotonic() - start, detail))
        console.print(f"[green]{name}[/] {time.monotonic() - start:.1f} s {detail}")


# ---- data -----------------------------------------------------------------------------------


def agnews_rows(path: Path) -> list[Row]:
    """AG News rows (description as the text, the label as its name)."""
    out = []
    with path.open(encoding="utf-8", newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            text = " ".join(row["description"].split())
            if text:
                out.append(Row(f"{path.stem[:5]}-{i:05d}", text, LABELS[int(row["label"])]))
    return out


def smoke_rows(n: int, seed: int) -> list[Row]:
    from training.tiny import topic_texts

    texts, labels = topic_texts(n, seed=seed)
    return [
        Row(f"smoke-{i:05d}", t, lab) for i, (t, lab) in enumerate(zip(texts, labels, strict=True))
    ]


def write_csv(path: Path, rows: Sequence[Row]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(("text", "label"))
        writer.writerows((r.text, r.label) for r in rows)
    return path


def records(rows: Sequence[Row], topics: TopicSettings) -> list[OutboundRecord]:
    out = []
    for r in rows:
        message = ArticleMessage(id=r.id, headline="", body=r.text, source="bench")
        value = message.model_dump_json(by_alias=True).encode()
        out.append(OutboundRecord(topics.article, r.id.encode(), value))
    return out


# ---- commands -------------------------------------------------------------------------------


def textroute(*args: str, env: dict[str, str] | None = None, log: Path | None = None) -> str:
    """Run a textroute command; its stdout, or exit with its output when it fails."""
    cmd = [sys.executable, "-m", "stream.cli", *args]
    # A wide terminal for the gate table, which the report quotes.
    full_env = {**os.environ, "COLUMNS": "160", **(env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=full_env, check=False)
    if log is not None:
        with log.open("a", encoding="utf-8") as fh:
            fh.write(f"$ textroute {' '.join(args)}\n{proc.stdout}{proc.stderr}\n")
    if proc.returncode != 0:
        sys.exit(f"textroute {' '.join(args[:2])} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def train(data: Path, out: Path, args: argparse.Namespace, log: Path, *extra: str) -> None:
    base = ["--base-model", args.base_model] if args.base_model else []
    textroute(
        "train", "classify", str(data), "--text-column", "text", "--output", str(out),
        "--no-baseline", "--no-lexical", "--epochs", str(args.epochs), "--seed", str(args.seed),
        "--validation-fraction", "0.1", "--work-dir", str(out.parent / f"runs-{out.name}"),
        *base, *extra, log=log,
    )  # fmt: skip
    textroute("export", str(out), "--data", str(data), "--sample", "200", log=log)


# ---- the stream -----------------------------------------------------------------------------


def write_rules(path: Path, labels: Sequence[str], review_below: float) -> Path:
    """Routing rules: a desk per label, human review below `review_below` confidence."""
    import yaml

    rules = {
        "version": 1,
        "default_queue": "triage",
        "review": {"queue": REVIEW_QUEUE, "min_confidence": review_below},
        "categories": {label: f"desk.{label.lower().replace('/', '-')}" for label in labels},
    }
    path.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    return path


class Worker:
    def __init__(
        self, bootstrap: str, home: Path, topics: TopicSettings, work: Path, rules: Path
    ) -> None:
        env = {
            **os.environ,
            **topics.as_env(),
            "TEXTROUTE_WORKER_RELOAD_INTERVAL_S": "1",
            "TEXTROUTE_WORKER_DATA_DIR": str(work / "faust"),
            "TEXTROUTE_WORKER_FEEDBACK_WAIT_S": "60",
        }
        cmd = [
            sys.executable, "-m", "stream", "worker", "--bootstrap", bootstrap,
            "--classifier", str(home / "current"), "--no-ner", "--rules", str(rules),
            "--shadow-classifier", str(home / "shadow"),
            "--app-id", f"bench-feedback-{uuid.uuid4().hex[:6]}",
        ]  # fmt: skip
        self.store = work / "faust" / "review.sqlite"
        self._log = (work / "worker.log").open("ab")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class Outputs:
    """Everything read so far from the routed and shadow topics, by message id (a follower
    reads them in the background)."""

    def __init__(self, broker: BrokerSettings, topics: TopicSettings) -> None:
        self.broker, self.topics = broker, topics
        self.follower = TopicFollower(broker, [topics.routed, topics.shadow])
        self.events: dict[str, RoutingEvent] = {}
        self.shadow: dict[str, ShadowEvent] = {}
        self._seen = 0

    async def wait_for(self, ids: Sequence[str], worker: Worker, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        wanted = set(ids)
        while not wanted <= set(self.events):
            if time.monotonic() > deadline or worker.proc.poll() is not None:
                missing = len(wanted - set(self.events))
                sys.exit(f"{missing} messages not routed (see the worker log)")
            await asyncio.sleep(0.2)
            await self.read()

    async def read(self) -> None:
        got = self.follower.records[self._seen :]
        self._seen += len(got)
        for record in got:
            assert record.value is not None
            if record.topic == self.topics.routed:
                event = RoutingEvent.model_validate_json(record.value)
                self.events[event.message_id] = event
            else:
                shadow = ShadowEvent.model_validate_json(record.value)
                self.shadow[shadow.message_id] = shadow


async def route(
    rows: Sequence[Row], outputs: Outputs, worker: Worker, timeout: float
) -> list[RoutingEvent]:
    await produce(outputs.broker, records(rows, outputs.topics))
    await outputs.wait_for([r.id for r in rows], worker, timeout)
    return [outputs.events[r.id] for r in rows]


async def wait_version(
    role: str, version: str, outputs: Outputs, worker: Worker, probes: list[Row]
) -> int:
    """Send probe messages until one is routed (or shadowed) by `version`; probes used."""
    for used, probe in enumerate(probes, start=1):
        await route([probe], outputs, worker, 120)
        await asyncio.sleep(0.5)
        await outputs.read()
        if role == "active" and outputs.events[probe.id].classifier.version == version:
            return used
        shadow = outputs.shadow.get(probe.id)
        if role == "shadow" and shadow is not None and shadow.candidate.model.version == version:
            return used
        await asyncio.sleep(1.0)
    sys.exit(f"the worker never served {role} version {version}")


def accuracy(predicted: Sequence[str], truth: Sequence[str]) -> float:
    return sum(p == t for p, t in zip(predicted, truth, strict=True)) / max(1, len(truth))


def paired_interval(
    before: Sequence[bool], after: Sequence[bool], seed: int, rounds: int = 2000
) -> tuple[float, float]:
    """95% bootstrap interval of the accuracy gain (after - before) on the same messages."""
    rng = random.Random(seed)
    n = len(before)
    diffs = [int(a) - int(b) for a, b in zip(after, before, strict=True)]
    gains = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(rounds))
    return gains[int(0.025 * rounds)], gains[int(0.975 * rounds) - 1]


# ---- the run --------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> Run:
    result = Run()
    work = Path(args.work or tempfile.mkdtemp(prefix="textroute-feedback-"))
    work.mkdir(parents=True, exist_ok=True)
    log = work / "commands.log"
    rng = random.Random(args.seed)
    if args.smoke:
        rows = smoke_rows(args.train + args.before + args.shadow_n + args.after + 50, args.seed)
        test_rows = smoke_rows(300, args.seed + 1)
    else:
        rows = agnews_rows(DATA / "train_subset_alps10k_description_only.csv")
        test_rows = agnews_rows(DATA / "test.csv")
    rng.shuffle(rows)
    rng.shuffle(test_rows)
    cut = [args.train, args.before, args.shadow_n, args.after, 40]
    parts, at = [], 0
    for n in cut:
        parts.append(rows[at : at + n])
        at += n
    first, before, shadow_rows, after, probes = parts
    test = write_csv(work / "test.csv", test_rows[: args.test])
    result.figures.update(
        first_training_rows=len(first), routed_before=len(before), shadow_messages=len(shadow_rows),
        routed_after=len(after), test_rows=args.test, data="smoke" if args.smoke else "AG News",
        review_below=args.review_below,
    )  # fmt: skip

    # The first model, trained on a small part of the set and made active.
    start = time.monotonic()
    v1 = work / "v1"
    train(write_csv(work / "first.csv", first), v1, args, log)
    v1_version = read_manifest(v1, verify=False).version
    home = work / "home"
    textroute("promote", str(v1), "--home", str(home), "--test", str(test), log=log)
    textroute("promote", str(v1), "--home", str(home), "--shadow", log=log)
    result.timed("first model (train + export + promote)", start, f"{len(first)} rows")

    tag = uuid.uuid4().hex[:6]
    topics = TopicSettings(
        email=f"fb-{tag}.email", ticket=f"fb-{tag}.ticket", article=f"fb-{tag}.article",
        routed=f"fb-{tag}.routed", dead_letter=f"fb-{tag}.dead-letter",
        feedback=f"fb-{tag}.feedback", archive=f"fb-{tag}.archive", shadow=f"fb-{tag}.shadow",
        partitions=1,
    )  # fmt: skip
    with EmbeddedBroker(EmbeddedBrokerSettings(port=0, log_file=work / "broker.log")) as broker:
        settings = BrokerSettings(bootstrap_servers=broker.bootstrap)
        await ensure_topics(settings, topics.all_topics(), topics.partitions)
        labels = sorted({r.label for r in first})
        rules = write_rules(work / "rules.yaml", labels, args.review_below)
        worker = Worker(broker.bootstrap, home, topics, work, rules)
        outputs = Outputs(settings, topics)
        try:
            async with outputs.follower:
                await cycle(args, result, work, log, rng, home, test, worker, outputs, topics,
                            v1, v1_version, before, shadow_rows, after, probes,
                            broker.bootstrap)  # fmt: skip
        finally:
            worker.stop()
    result.figures["work_dir"] = str(work)
    return result


async def cycle(
    args: argparse.Namespace, result: Run, work: Path, log: Path, rng: random.Random,
    home: Path, test: Path, worker: Worker, outputs: Outputs, topics: TopicSettings, v1: Path,
    v1_version: str, before: list[Row], shadow_rows: list[Row], after: list[Row],
    probes: list[Row], bootstrap: str,
) -> None:  # fmt: skip
    env = topics.as_env()
    truth = {r.id: r.label for r in [*before, *shadow_rows, *after]}

    # Traffic before the cycle, routed by the first model.
    start = time.monotonic()
    routed = await route(before, outputs, worker, 600)
    acc_before_live = accuracy([e.category for e in routed], [truth[e.message_id] for e in routed])
    reviewed = [e for e in routed if e.route == REVIEW_QUEUE or rng.random() < args.sample]
    result.timed("route (first model)", start, f"{len(routed)} messages")

    # Reviewers: the true label of each message they look at.
    start = time.monotonic()
    feedback = work / "feedback.jsonl"
    now = datetime.now(timezone.utc).isoformat()
    with feedback.open("w", encoding="utf-8") as fh:
        for i, e in enumerate(reviewed):
            fh.write(json.dumps({
                "message_id": e.message_id, "label": truth[e.message_id],
                "routing_correct": truth[e.message_id] == e.category,
                "reviewer": f"reviewer-{i % 3}", "reviewed_at": now,
            }) + "\n")  # fmt: skip
    corrections = sum(truth[e.message_id] != e.category for e in reviewed)
    textroute("feedback", "send", str(feedback), "--bootstrap", bootstrap, env=env, log=log)
    to_review = sum(e.route == REVIEW_QUEUE for e in reviewed)
    result.figures.update(
        reviewed=len(reviewed), sent_to_review=to_review, sampled=len(reviewed) - to_review,
        corrections=corrections,
    )  # fmt: skip
    result.timed("feedback sent", start, f"{len(reviewed)} reviews, {corrections} corrections")

    # 1. join: wait until the store has joined every review, then export the dataset.
    start = time.monotonic()
    dataset = work / "reviewed.csv"
    deadline = time.monotonic() + 120
    while True:
        out = textroute("feedback", "dataset", "--store", str(worker.store), "--out", str(dataset))
        with dataset.open(encoding="utf-8", newline="") as fh:
            joined = list(csv.DictReader(fh))
        if len(joined) >= len(reviewed) or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    if len(joined) < len(reviewed):
        sys.exit(f"only {len(joined)} of {len(reviewed)} reviews joined: {out}")
    rng.shuffle(joined)
    hold = max(1, int(len(joined) * args.holdout))
    gate_rows, train_rows = joined[:hold], joined[hold:]
    for name, part in (("reviewed-train.csv", train_rows), ("reviewed-gate.csv", gate_rows)):
        with (work / name).open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(joined[0]))
            writer.writeheader()
            writer.writerows(part)
    result.timed("1. join (feedback dataset)", start, f"{len(train_rows)} train, {hold} gate rows")

    # 2. retrain from the active artifact, with a replay sample of its training rows.
    start = time.monotonic()
    v2 = work / "v2"
    train(work / "reviewed-train.csv", v2, args, log, "--init-from", str(home / "current"),
          "--replay", str(work / "first.csv"))  # fmt: skip
    v2_manifest = read_manifest(v2, verify=False)
    lineage = v2_manifest.lineage
    result.figures["replay_rows"] = lineage.replay_rows if lineage else None
    result.timed("2. retrain (--init-from + export)", start, f"version {v2_manifest.version}")

    # 3. shadow on live traffic.
    start = time.monotonic()
    textroute("promote", str(v2), "--home", str(home), "--shadow", log=log)
    await wait_version("shadow", v2_manifest.version, outputs, worker, probes[:20])
    shadowed = await route(shadow_rows, outputs, worker, 600)
    await asyncio.sleep(1.0)
    await outputs.read()
    pairs = [outputs.shadow[e.message_id] for e in shadowed if e.message_id in outputs.shadow]
    agree = sum(p.agree for p in pairs) / max(1, len(pairs))
    shadow_acc = accuracy(
        [p.candidate.category for p in pairs], [truth[p.message_id] for p in pairs]
    )
    active_acc = accuracy([p.active.category for p in pairs], [truth[p.message_id] for p in pairs])
    unchanged = all(e.classifier.version == v1_version for e in shadowed)
    result.figures.update(
        shadow_pairs=len(pairs), shadow_agreement=agree, shadow_candidate_accuracy=shadow_acc,
        shadow_active_accuracy=active_acc, shadow_never_routed=unchanged,
    )  # fmt: skip
    result.timed("3. shadow", start, f"{len(pairs)} pairs, agreement {100 * agree:.1f}%")

    # 4. promote through the gates; the worker hot-reloads.
    start = time.monotonic()
    gates = textroute(
        "promote", str(v2), "--home", str(home), "--test", str(test),
        "--reviewed", str(work / "reviewed-gate.csv"), "--margin", str(args.margin), log=log,
    )  # fmt: skip
    probes_used = await wait_version("active", v2_manifest.version, outputs, worker, probes[20:])
    result.figures["gates"] = gates.strip()
    result.timed("4. promote (gates + hot reload)", start, f"{probes_used} probe(s)")

    # After: the unseen messages, routed live by the promoted model; the first model on the
    # same messages, offline, through the serving path.
    start = time.monotonic()
    routed_after = await route(after, outputs, worker, 600)
    result.timed("route (promoted model)", start, f"{len(routed_after)} messages")
    wrong_version = sum(e.classifier.version != v2_manifest.version for e in routed_after)
    from inference import load_predictor

    first_model = load_predictor(v1)
    texts = [r.text for r in after]
    first_labels = [
        c.label if isinstance(c, Classification) else "" for c in first_model.classify(texts)
    ]
    gold = [r.label for r in after]
    after_labels = [outputs.events[r.id].category for r in after]
    right_before = [p == t for p, t in zip(first_labels, gold, strict=True)]
    right_after = [p == t for p, t in zip(after_labels, gold, strict=True)]
    low, high = paired_interval(right_before, right_after, args.seed)
    result.figures.update(
        live_accuracy_first_model_before=acc_before_live,
        accuracy_first_model_after=accuracy(first_labels, gold),
        accuracy_promoted_model_after=accuracy(after_labels, gold),
        gain_interval=(low, high),
        routed_after_by_other_version=wrong_version,
        review_rate_before=sum(e.route == REVIEW_QUEUE for e in routed) / len(routed),
        review_rate_after=sum(e.route == REVIEW_QUEUE for e in routed_after) / len(routed_after),
    )  # fmt: skip


# ---- report ---------------------------------------------------------------------------------


def report(result: Run) -> Table:
    table = Table(title="One feedback cycle")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("detail")
    for step in result.steps:
        table.add_row(step.name, f"{step.seconds:.1f}", step.detail)
    return table


def _pct(x: object) -> str:
    return f"{100 * float(x):.2f}"  # type: ignore[arg-type]


def markdown(result: Run, argv: Sequence[str]) -> str:
    f = result.figures
    interval: tuple[float, float] = f["gain_interval"]  # type: ignore[assignment]
    low, high = interval
    before, after = f["accuracy_first_model_after"], f["accuracy_promoted_model_after"]
    gain = float(after) - float(before)  # type: ignore[arg-type]
    rows = [
        ("accuracy of the first model, live, before the cycle",
         _pct(f["live_accuracy_first_model_before"])),
        ("**after: the first model on the unseen messages**", _pct(before)),
        ("**after: the promoted model, live, on the same messages**", _pct(after)),
        ("gain (paired, 95% bootstrap interval)",
         f"{100 * gain:+.2f} ({100 * low:+.2f} to {100 * high:+.2f})"),
        ("review rate before / after",
         f"{_pct(f['review_rate_before'])} / {_pct(f['review_rate_after'])}"),
        ("corrections used (of reviews)", f"{f['corrections']} (of {f['reviewed']})"),
        ("replay rows from the first training set", str(f["replay_rows"])),
        (f"shadow agreement ({f['shadow_pairs']} pairs)", _pct(f["shadow_agreement"])),
        ("shadow: candidate vs active accuracy",
         f"{_pct(f['shadow_candidate_accuracy'])} vs {_pct(f['shadow_active_accuracy'])}"),
        ("routing during the shadow by the active model only", str(f["shadow_never_routed"])),
        ("messages after the promotion routed by an older version",
         str(f["routed_after_by_other_version"])),
    ]  # fmt: skip
    lines = [
        SECTION,
        "",
        f"`python bench/feedback.py {' '.join(argv)}` on {platform.machine()} "
        f"({os.cpu_count()} cores), {datetime.now(timezone.utc):%Y-%m-%d}; data: {f['data']}.",
        "",
        f"A classifier trained on {f['first_training_rows']} rows routed {f['routed_before']} "
        f"messages (human review below {f['review_below']} confidence); simulated reviewers "
        f"labelled the {f['sent_to_review']} sent to human review "
        f"and a random {f['sampled']} of the others ({f['reviewed']} reviews, "
        f"{f['corrections']} corrections). The cycle ran with the worker up; then "
        f"{f['routed_after']} messages no training saw were routed by the promoted model.",
        "",
        "| figure | value |",
        "| --- | --- |",
        *(f"| {name} | {value} |" for name, value in rows),
        "",
        "| step | seconds | detail |",
        "| --- | ---: | --- |",
        *(f"| {s.name} | {s.seconds:.1f} | {s.detail} |" for s in result.steps),
        "",
        "Gates at promotion:",
        "",
        "```",
        str(f["gates"]),
        "```",
        "",
    ]
    return "\n".join(lines)


def write_results(text: str) -> None:
    body = RESULTS.read_text(encoding="utf-8")
    start = body.find(SECTION)
    if start < 0:
        body = body.rstrip("\n") + "\n\n" + text
    else:
        end = body.find("\n## ", start + len(SECTION))
        body = body[:start] + text + ("" if end < 0 else body[end + 1 :])
    RESULTS.write_text(body, encoding="utf-8")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="Tiny models and texts.")
    p.add_argument("--train", type=int, default=400, help="Rows of the first training.")
    p.add_argument("--before", type=int, default=2000, help="Messages routed before the cycle.")
    p.add_argument("--shadow-n", type=int, default=300, help="Messages during the shadow.")
    p.add_argument("--after", type=int, default=2000, help="Unseen messages after it.")
    p.add_argument("--test", type=int, default=1000, help="Test rows for the promotion gate.")
    p.add_argument(
        "--review-below",
        type=float,
        default=0.9,
        help="Routing rule: confidence under which a message goes to human review.",
    )
    p.add_argument("--sample", type=float, default=0.05, help="Share of others reviewed.")
    p.add_argument("--holdout", type=float, default=0.2, help="Reviews kept for the gate.")
    p.add_argument("--margin", type=float, default=0.5, help="Gate margin, accuracy points.")
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--base-model", default=None)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--work", default=None, help="Keep the run's files here.")
    p.add_argument("--write-results", action="store_true")
    args = p.parse_args(argv)
    if args.smoke:
        args.train, args.before, args.shadow_n, args.after, args.test = 120, 200, 40, 200, 100
        args.epochs = 2.0
        if args.base_model is None:
            from training.tiny import build_tiny_base_model

            base = Path(tempfile.mkdtemp(prefix="textroute-tiny-")) / "base"
            args.base_model = str(build_tiny_base_model(base))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    result = asyncio.run(run(args))
    Console().print(report(result))
    text = markdown(result, argv)
    print(text)
    if args.write_results:
        write_results(text)
    if not args.work:
        shutil.rmtree(result.figures["work_dir"], ignore_errors=True)  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
