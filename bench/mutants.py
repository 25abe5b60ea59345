"""Guard removals: delete each at-least-once guard in a copy of the tree and run the tests that
must catch it; a mutant whose tests still pass is a guard nothing checks.

Each mutant names one guard of the stream's delivery or processing path (stream/faust_app.py,
stream/processor.py, stream/model_set.py, stream/models.py, stream/worker.py), the exact source
it removes or changes, and the tests that pin it. The copy is made once (the files git tracks or
would add, without .venv or models), each mutant is applied to it alone, its tests run with that
copy first on the import path (worker subprocesses inherit it), and the file is restored.

    python bench/mutants.py                 # every mutant (about 15-25 minutes on 2 cores)
    python bench/mutants.py --only ack      # the mutants whose name contains "ack"
    python bench/mutants.py --list          # names, files and tests, no runs

First the tests run on the unchanged copy (a failure there makes every verdict meaningless).

Exit code 0 when every mutant is killed, 1 when any survives, 2 when a mutant no longer
applies (its source changed: update the list).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    """One guard removed: `old` in `path` becomes `new`; `tests` must then fail."""

    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    guard: str


FAULTS = "tests/stream/test_delivery_faults.py"
AGENT = "tests/stream/test_faust_app.py"
WORKER = "tests/stream/test_processor.py"
PROPERTIES = "tests/stream/test_processor_properties.py"
MODELS = "tests/stream/test_models.py"
REVIEW = "tests/stream/test_review_service.py"
SHADOW = "tests/stream/test_shadow.py"

MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        name="ack-before-delivery",
        path="stream/faust_app.py",
        old="                for event in events:\n                    event.message.incref()\n",
        new="",
        # The slow-broker test catches it only when the agent wins a race with faust's
        # commit (faust flushes the producer first); the failed-produce test always does: the
        # batch in hand is acked as the agent crashes, and faust commits it on the way out.
        tests=(
            f"{FAULTS}::test_a_produce_that_fails_stops_the_worker_at_once_with_nothing_committed_past_it",
            f"{FAULTS}::test_no_offset_is_committed_past_an_output_the_broker_has_not_acknowledged",
        ),
        guard="inputs are held until their outputs are acknowledged "
        "(faust's take_events acks early)",
    ),
    Mutant(
        name="ack-without-waiting-for-the-broker",
        path="stream/faust_app.py",
        old="        await asyncio.gather(*futures)\n",
        new="",
        tests=(f"{AGENT}::test_inputs_are_acked_only_after_the_broker_acknowledged_every_output",),
        guard="deliver() waits for every output's acknowledgement before acking inputs",
    ),
    Mutant(
        name="produce-failure-noticed-one-batch-late",
        path="stream/faust_app.py",
        old="                delivering.add_done_callback(self._on_delivered)\n",
        new="",
        tests=(
            f"{FAULTS}::test_a_produce_that_fails_stops_the_worker_at_once_with_nothing_committed_past_it",
        ),
        guard="a failed delivery stops the agent at once, not when the next batch arrives",
    ),
    Mutant(
        name="deliveries-out-of-order",
        path="stream/faust_app.py",
        old=(
            "                await self._settle(delivering)\n"
            "                delivering = asyncio.ensure_future(\n"
        ),
        new="                delivering = asyncio.ensure_future(\n",
        tests=(
            f"{AGENT}::test_batches_are_acked_in_order_though_a_later_one_is_acknowledged_first",
        ),
        guard="a batch is delivered only after the batch before it (one delivery at a time)",
    ),
    # Not listed: the agent's two shutdown guards (finishing a batch whose inference a
    # cancellation interrupts, and waiting for the last delivery before returning). faust's own
    # shutdown already stops the stream without cancelling the agent and flushes the producer
    # before its last commit, so removing either guard leaves the behaviour intact, as measured
    # with the SIGTERM tests (a slow model, a slow broker); they stay as belt and braces.
    Mutant(
        name="event-encoded-outside-the-record-guard",
        path="stream/processor.py",
        old=(
            '            key = event.message_id.encode("utf-8")\n'
            '            value = event.model_dump_json().encode("utf-8")\n'
            "        except Exception as exc:\n"
            "            return self._unexpected(item.record, item.message, exc)\n"
        ),
        new=(
            "        except Exception as exc:\n"
            "            return self._unexpected(item.record, item.message, exc)\n"
            '        key = event.message_id.encode("utf-8")\n'
            '        value = event.model_dump_json().encode("utf-8")\n'
        ),
        tests=(f"{WORKER}::test_an_event_that_cannot_be_encoded_costs_only_its_own_record",),
        guard="each event is encoded (key included) inside its record's guard",
    ),
    Mutant(
        name="dead-letter-payload-uncapped",
        path="stream/dead_letters.py",
        old='        payload_b64=base64.b64encode(raw[:payload_bytes]).decode("ascii"),\n',
        new='        payload_b64=base64.b64encode(raw).decode("ascii"),\n',
        tests=(
            f"{WORKER}::test_a_large_rejected_payload_keeps_its_head_size_and_digest",
            f"{PROPERTIES}",
        ),
        guard="a dead letter keeps at most dead_letter_payload_bytes of the payload",
    ),
    Mutant(
        name="huge-integers-parsed",
        path="stream/records.py",
        old="            parse_int=_bounded_int,\n",
        new="",
        tests=(f"{WORKER}::test_numbers_python_reads_but_json_cannot_carry_are_invalid_json",),
        guard="integers of more than 4,300 digits are invalid_json, not unexpected_error",
    ),
    Mutant(
        name="whole-call-failure-not-narrowed-to-items",
        path="stream/model_set.py",
        old="    except Exception:\n        results = []\n        for text in texts:\n",
        new="    except ZeroDivisionError:\n        results = []\n        for text in texts:\n",
        tests=(f"{WORKER}::test_a_model_failing_on_one_item_dead_letters_only_that_item",),
        guard="a predictor call that raises is retried item by item",
    ),
    Mutant(
        name="parallel-entities-misaligned-after-a-classifier-failure",
        path="stream/model_set.py",
        old=(
            "        entity_lists = [e for e, keep in zip(all_entities, ok, strict=True) if keep]\n"
        ),
        new="        entity_lists = list(all_entities[: len(classified)])\n",
        tests=(f"{WORKER}::test_a_model_failing_on_one_item_dead_letters_only_that_item",),
        guard="with NER beside the classifier, each routed text keeps its own entities",
    ),
    Mutant(
        name="ner-failure-not-dead-lettered",
        path="stream/model_set.py",
        old=(
            "        if not isinstance(ents, list):\n"
            '            outcomes[i] = Failed("ner", ents)\n'
            "            continue\n"
        ),
        new="",
        tests=(f"{WORKER}::test_a_model_failing_on_one_item_dead_letters_only_that_item",),
        guard="an NER failure on one item dead-letters that item",
    ),
    Mutant(
        name="batch-bug-loses-the-batch",
        path="stream/processor.py",
        old="        except Exception as exc:\n            # A bug outside every",
        new="        except ZeroDivisionError as exc:\n            # A bug outside every",
        tests=(
            f"{WORKER}::test_a_failure_outside_the_per_record_guards_dead_letters_the_batch_not_the_worker",
        ),
        guard="a bug outside the per-record guards still yields one output per record",
    ),
    Mutant(
        name="reload-failure-escapes",
        path="stream/models.py",
        old="            except Exception as exc:\n                for role in roles:\n",
        new="            except ZeroDivisionError as exc:\n                for role in roles:\n",
        tests=(f"{MODELS}",),
        guard="any failure while checking or loading a new version keeps the old models",
    ),
    Mutant(
        name="model-slot-unchecked",
        path="stream/models.py",
        old="    expected = SLOT_TASKS[slot]\n    if manifest.task in expected:\n        return\n",
        new="    expected = SLOT_TASKS[slot]\n    return\n",
        tests=(
            f"{MODELS}::test_an_ner_artifact_in_the_classifier_slot_is_refused_at_reload",
            "tests/stream/test_worker.py",
        ),
        guard="a model whose task does not fit its slot is refused at start and at reload",
    ),
    Mutant(
        name="feedback-committed-before-its-dead-letters",
        path="stream/review_service.py",
        old="        await self._produce(producer, taken.dead)\n",
        new="        asyncio.ensure_future(self._produce(producer, taken.dead))\n",
        tests=(
            f"{REVIEW}::test_dead_letters_are_acknowledged_before_the_batch_is_committed",
            f"{REVIEW}::test_a_dead_letter_the_broker_refuses_commits_nothing_and_keeps_the_feedback",
        ),
        guard="the review service commits feedback only after its dead letters are acknowledged",
    ),
    Mutant(
        name="shadow-answer-leaks-into-routing",
        path="stream/processor.py",
        old="                    outputs[position] = replace(out, shadow=pair)\n",
        new=(
            "                    outputs[position] = replace(out, shadow=pair)\n"
            "                    if out.message.category != pair.message.candidate.category:\n"
            "                        outputs[position] = self._dead(\n"
            "                            entry.item.record, DeadLetterReason.INFERENCE_ERROR,\n"
            "                            'Shadow', 'disagreed',\n"
            "                            message_id=out.message.message_id)\n"
        ),
        tests=(
            f"{SHADOW}::test_events_with_a_disagreeing_shadow_are_byte_identical_to_those_without",
        ),
        guard="a shadow candidate's answer never changes a routing output",
    ),
)


def _tree_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [line for line in out.splitlines() if line and (REPO / line).is_file()]


def _copy_tree(dest: Path) -> None:
    for rel in _tree_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)


def _run_tests(tree: Path, tests: tuple[str, ...], log: Path) -> tuple[bool, float]:
    """Whether the tests passed in `tree`, and how long they took."""
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.perf_counter()
    with log.open("wb") as out:
        code = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
            cwd=tree,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        ).returncode
    return code == 0, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run the mutants whose name contains this")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument(
        "--check", action="store_true", help="only check that every mutant still applies"
    )
    parser.add_argument("--keep", action="store_true", help="keep the copy and the logs")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the run of the unchanged copy"
    )
    args = parser.parse_args()
    console = Console()
    chosen = [m for m in MUTANTS if args.only in m.name]

    if args.check:
        stale = [
            m.name for m in chosen if (REPO / m.path).read_text(encoding="utf-8").count(m.old) != 1
        ]
        for name in stale:
            console.print(f"[red]error:[/] mutant {name} no longer applies")
        return 2 if stale else 0

    if args.list:
        for m in chosen:
            console.print(f"[bold]{m.name}[/] ({m.path}): {m.guard}\n  " + "\n  ".join(m.tests))
        return 0

    work = Path(tempfile.mkdtemp(prefix="textroute-mutants-"))
    tree = work / "tree"
    _copy_tree(tree)
    for m in chosen:
        if (tree / m.path).read_text(encoding="utf-8").count(m.old) != 1:
            console.print(f"[red]error:[/] mutant {m.name} no longer applies to {m.path}")
            return 2

    if not args.no_baseline:
        tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
        console.print(f"baseline: {len(tests)} tests on the unchanged copy")
        passed, took = _run_tests(tree, tests, work / "baseline.log")
        if not passed:
            console.print(f"[red]error:[/] the tests fail without any mutant (log {work})")
            return 2
        console.print(f"baseline passed ({took:.0f} s)")

    table = Table(title="Guard removals")
    for column in ("mutant", "file", "tests", "result", "s"):
        table.add_column(column)
    survivors = []
    for m in chosen:
        path = tree / m.path
        original = path.read_text(encoding="utf-8")
        path.write_text(original.replace(m.old, m.new), encoding="utf-8")
        try:
            passed, took = _run_tests(tree, m.tests, work / f"{m.name}.log")
        finally:
            path.write_text(original, encoding="utf-8")
        verdict = "[red]SURVIVED[/]" if passed else "[green]killed[/]"
        if passed:
            survivors.append(m)
        console.print(f"{m.name}: {verdict} ({took:.0f} s)")
        table.add_row(m.name, m.path, str(len(m.tests)), verdict, f"{took:.0f}")

    console.print(table)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    console.print(
        f"{len(chosen) - len(survivors)} of {len(chosen)} killed, {len(survivors)} survived; "
        f"{platform.machine()}, {os.cpu_count()} cores, {when}"
    )
    for m in survivors:
        console.print(f"[red]survivor:[/] {m.name}: {m.guard}")
    if args.keep:
        console.print(f"copy and logs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
