"""The new benchmark options end to end, in their smoke modes: inference_speed --plot and
bucket_padding on the tiny classifier, stream_throughput --smoke --load-sweep --plot (both
worker configurations on the embedded broker) and memory.py --smoke (the worker and the API as
real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"


def _run(args: list[str], timeout: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TEXTROUTE_INFERENCE_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


def test_inference_speed_plots_texts_per_s_against_batch(
    tiny_classifier_artifact: Path, shared_data: Path, tmp_path: Path
) -> None:
    plot, out = tmp_path / "speed.png", tmp_path / "speed.json"
    _run(
        ["bench/inference_speed.py", "--classifier", str(tiny_classifier_artifact),
         "--data", str(shared_data / "ag_news" / "test.csv"), "--limit", "16",
         "--naive-limit", "4", "--batches", "1,4", "--repeat", "1", "--threads", "1",
         "--plot", str(plot), "--json", str(out)],
        timeout=300,
    )  # fmt: skip
    assert plot.read_bytes().startswith(PNG)
    batches = {r["batch"] for r in json.loads(out.read_text())["results"] if "ONNX" in r["engine"]}
    assert batches == {1, 4}


def test_bucket_padding_times_every_ratio_in_every_round_on_the_same_texts(
    tiny_classifier_artifact: Path, shared_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "padding.json"
    proc = _run(
        ["bench/bucket_padding.py", "--artifact", str(tiny_classifier_artifact),
         "--data", str(shared_data / "ag_news" / "test.csv"), "--limit", "16", "--batch", "8",
         "--ratios", "1.0,1.5", "--rounds", "2", "--json", str(out)],
        timeout=300,
    )  # fmt: skip
    assert "ratio 1.5" in proc.stdout
    report = json.loads(out.read_text())
    assert (report["texts"], report["batch"]) == (16, 8)
    rates = report["texts_per_s"][str(tiny_classifier_artifact)]
    assert set(rates) == {"1", "1.5"}
    assert all(len(passes) == 2 and min(passes) > 0 for passes in rates.values())


def test_bucket_padding_refuses_a_ratio_below_one_in_one_line(
    tiny_classifier_artifact: Path,
) -> None:
    proc = subprocess.run(
        [sys.executable, "bench/bucket_padding.py", "--artifact", str(tiny_classifier_artifact),
         "--ratios", "1.1,0.5"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "ratios are 1.0 or more" in proc.stderr.strip().splitlines()[-1]


@pytest.mark.integration
@pytest.mark.slow
def test_stream_throughput_load_sweep_in_smoke_mode(tmp_path: Path) -> None:
    plot, out = tmp_path / "load.png", tmp_path / "stream.json"
    proc = _run(
        ["bench/stream_throughput.py", "--smoke", "--texts", "samples", "--messages", "120",
         "--latency-messages", "20", "--skip-naive", "--load-sweep", "0.25,1.0",
         "--sweep-seconds", "1", "--json", str(out), "--plot", str(plot)],
        timeout=900,
    )  # fmt: skip
    assert "half saturation" in proc.stdout
    assert plot.read_bytes().startswith(PNG)
    report = json.loads(out.read_text())
    swept = {r["system"]: r["sweep"] for r in report["results"] if r["sweep"]}
    assert set(swept) == {"worker", "worker (multitask)"}
    for points in swept.values():
        assert [p["fraction"] for p in points] == [0.25, 0.5, 1.0]
        for p in points:
            assert p["offered_per_s"] > 0 and p["achieved_per_s"] > 0
            assert 0 < p["p50_ms"] <= p["p99_ms"]
    for name in swept:
        half = report["load_sweep"][name]
        assert half["half_saturation"]["fraction"] == 0.5
        assert isinstance(half["meets_target"], bool)
    # Where each drain's CPU went: the worker, the embedded broker, this load and the idle;
    # for bare inference, this process and the idle; and the CPU a message that makes.
    cores = os.cpu_count() or 1
    for result in report["results"]:
        split, per = result["drain_cores"], result["cpu_ms_per_message"]
        if result["system"].startswith("worker"):
            assert set(split) == {result["system"], "broker", "load", "idle"}
        elif result["system"].startswith("bare"):
            assert set(split) == {result["system"], "idle"}
            # Timed on both sides of its worker's run; the rate is the two passes together.
            before, after = result["passes_per_s"]
            assert min(before, after) <= result["messages_per_s"] <= max(before, after)
        else:
            continue
        assert split[result["system"]] > 0 and all(v >= 0 for v in split.values())
        # /proc counts in clock ticks: each figure may be a tick off at either end of the
        # window (the idle one a tick per core), which a smoke drain's fraction of a second
        # magnifies; beyond that the split cannot hold more cores than the machine has.
        tick = 1 / os.sysconf("SC_CLK_TCK")
        slack = 2 * tick * (len(split) - 1 + cores) / result["seconds"]
        assert sum(split.values()) <= cores * 1.05 + slack, (split, result["seconds"])
        assert set(per) == set(split) - {"idle"} | {"all"}
        expected = sum(v for k, v in split.items() if k != "idle") / result["messages_per_s"]
        assert per["all"] == pytest.approx(expected * 1000, rel=0.01)
    assert "cores over the drain" in proc.stdout
    assert "ms of CPU a message" in proc.stdout
    # The rest of the report is still there.
    assert {"bare_fraction", "multitask_bare_fraction"} <= set(report)


@pytest.mark.integration
@pytest.mark.slow
def test_memory_smoke_measures_each_process_and_model_set(tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    proc = _run(
        ["bench/memory.py", "--smoke", "--texts", "samples", "--messages", "20",
         "--requests", "20", "--settle", "0.2", "--json", str(out)],
        timeout=900,
    )  # fmt: skip
    assert "RSS MB" in proc.stdout
    report = json.loads(out.read_text())
    measured = {(s["process"], s["model_set"], s["phase"]) for s in report["samples"]}
    worker_sets = ("classifier", "classifier+ner", "multitask", "pipelines")
    for phase in ("ready", "after 20"):
        assert {("worker", s, phase) for s in worker_sets} <= measured
        assert {("api", s, phase) for s in worker_sets[:3]} <= measured
    for s in report["samples"]:
        assert 0 < s["rss_mb"] <= s["peak_mb"]
    if report["onnx_session_metrics"].get("worker"):
        # Each graph once: a classifier shared by three pipelines and NER by two is two.
        graphs = {
            s["model_set"]: s["onnx_sessions"]
            for s in report["samples"]
            if s["process"] == "worker"
        }
        assert graphs == {"classifier": 1, "classifier+ner": 2, "multitask": 1, "pipelines": 2}
    assert any("pipelines: skipped" in note for note in report["notes"])
