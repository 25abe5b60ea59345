"""The benchmarks' plots and new options without running a benchmark: bench/plots.py draws
PNGs, inference_speed --plot, stream_throughput --load-sweep (parsing, table, summary, plot) and
bench/memory.py's readings of a process and of a metrics page."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.bench.conftest import BenchModule

PNG = b"\x89PNG\r\n\x1a\n"


def test_plots_write_pngs_and_a_bare_name_goes_under_the_plots_dir(
    bench_module: BenchModule, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plots = bench_module("plots")
    monkeypatch.setattr(plots, "PLOTS_DIR", tmp_path / "plots")

    out = plots.throughput_vs_batch(
        "speed.png",
        {"classifier, ONNX int8": [(8, 900.0), (1, 300.0), (32, 1200.0)], "naive": [(1, 40.0)]},
    )
    assert out == tmp_path / "plots" / "speed.png"
    assert out.read_bytes().startswith(PNG)

    curve = plots.LoadCurve([10.0, 50.0, 100.0], [8.0, 12.0, 90.0], [20.0, 40.0, 400.0], 50.0)
    nested = tmp_path / "deep" / "load.png"
    assert plots.latency_vs_load(nested, {"worker": curve}, target_ms=100.0) == nested
    assert nested.read_bytes().startswith(PNG)


def test_inference_speed_plots_one_line_per_model_and_engine(
    bench_module: BenchModule, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    speed = bench_module("inference_speed")
    drawn: dict[str, list[tuple[int, float]]] = {}

    def fake(path: Path, curves: dict[str, list[tuple[int, float]]], **_: object) -> Path:
        drawn.update(curves)
        return path

    monkeypatch.setattr(bench_module("plots"), "throughput_vs_batch", fake)
    results = [
        speed.Result("classifier", "naive pipeline", 1, 10, 1.0, 10.0, 100.0, 100.0),
        speed.Result("classifier", "ONNX int8", 1, 10, 0.1, 100.0, 10.0, 10.0),
        speed.Result("classifier", "ONNX int8", 8, 10, 0.05, 200.0, 40.0, 40.0),
        speed.Result("ner", "ONNX int8", 8, 10, 0.1, 100.0, 80.0, 80.0),
    ]
    speed.plot(tmp_path / "x.png", results, threads=2)
    assert drawn == {
        "classifier, naive pipeline": [(1, 10.0)],
        "classifier, ONNX int8": [(1, 100.0), (8, 200.0)],
        "ner, ONNX int8": [(8, 100.0)],
    }


def test_load_sweep_fractions_always_hold_half_saturation(bench_module: BenchModule) -> None:
    st = bench_module("stream_throughput")
    args = st.parse(["--load-sweep", "1.0,0.1,0.9", "--plot", "load.png"])
    assert args.load_sweep == (0.1, 0.5, 0.9, 1.0)
    assert (args.sweep_seconds, args.sweep_min_messages) == (10.0, 100)
    smoke = st.parse(["--smoke", "--load-sweep", "0.5"])
    assert smoke.load_sweep == (0.5,)
    assert (smoke.sweep_seconds, smoke.sweep_min_messages) == (2.0, 20)
    assert st.parse([]).load_sweep == ()
    for bad in (["--load-sweep", "0,1"], ["--load-sweep", "a"], ["--plot", "x.png"]):
        with pytest.raises(SystemExit):
            st.parse(bad)


def test_sweep_summary_judges_p99_at_half_saturation(
    bench_module: BenchModule, tmp_path: Path
) -> None:
    st = bench_module("stream_throughput")
    fast = st.SystemResult("worker", 1000, 10.0, 100.0)
    fast.sweep = [
        st.LoadPoint(0.5, 50.0, 49.0, 500, 20.0, 60.0),
        st.LoadPoint(1.0, 100.0, 90.0, 1000, 300.0, 900.0),
    ]
    slow = st.SystemResult("worker (multitask)", 1000, 20.0, 50.0)
    slow.sweep = [st.LoadPoint(0.5, 25.0, 25.0, 250, 80.0, 150.0)]

    summary = st.sweep_summary([fast, slow])
    assert summary["worker"]["meets_target"] is True
    assert summary["worker (multitask)"]["meets_target"] is False
    assert summary["worker"]["half_saturation"]["offered_per_s"] == 50.0
    assert "misses" in str(summary["worker (multitask)"]["verdict"])
    json.dumps(summary)  # goes into --json as it is

    table = st.sweep_table([fast, slow])
    assert table.row_count == 3
    args = st.parse(["--load-sweep", "0.5", "--plot", "x.png"])
    assert "| worker | 50% | 50.0 | 49.0 | 500 | 20.0 | 60.0 |" in st.markdown(
        [fast, slow], {"bare_fraction": 0.9}, args
    )
    out = st.plot_sweep(str(tmp_path / "load.png"), [fast, slow], args)
    assert out.read_bytes().startswith(PNG)


def test_bare_inference_on_both_sides_of_the_worker_counts_as_their_combined_rate(
    bench_module: BenchModule,
) -> None:
    st = bench_module("stream_throughput")
    name = "bare inference"
    before = st.SystemResult(name, 3000, 2.0, 1500.0, drain_cores={name: 1.6, "idle": 0.4})
    after = st.SystemResult(name, 3000, 3.0, 1000.0, drain_cores={name: 1.8, "idle": 0.2})

    both = st.around(before, after)
    # 6,000 texts in 5 s, not the mean of the two rates (1,250): the slower pass weighs more.
    assert both.messages_per_s == pytest.approx(1200.0)
    assert both.passes_per_s == [1500.0, 1000.0]
    assert both.drain_cores == {name: pytest.approx(1.72), "idle": pytest.approx(0.28)}
    assert st.passes_lines([both]) == [
        "bare inference: 1500.0 msg/s before the worker's run, 1000.0 after; the ratios take both"
    ]


def test_memory_reads_this_process_and_finds_a_session_metric(bench_module: BenchModule) -> None:
    memory = bench_module("memory")
    status = memory.proc_status(os.getpid())
    assert 0 < status["VmRSS"] <= status["VmHWM"]

    exposition = (
        "# HELP textroute_batch_size Records per micro-batch.\n"
        "# TYPE textroute_batch_size gauge\n"
        "textroute_batch_size 3.0\n"
        "# HELP textroute_onnx_sessions ONNX Runtime sessions loaded.\n"
        "# TYPE textroute_onnx_sessions gauge\n"
        'textroute_onnx_sessions{model="classifier"} 1.0\n'
        'textroute_onnx_sessions{model="ner"} 1.0\n'
    )
    assert memory.session_count(exposition) == (2.0, "textroute_onnx_sessions")
    assert memory.session_count("# TYPE x gauge\nx 1.0\n") == (None, None)


def test_memory_model_sets_follow_the_artifacts_given(bench_module: BenchModule) -> None:
    memory = bench_module("memory")
    args = memory.parse(["--classifier", "c", "--ner", "n", "--pipelines", "p.yaml"])
    names = [s.name for s in memory.model_sets(args)]
    assert names == ["classifier", "classifier+ner", "pipelines"]
    narrowed = memory.parse(["--classifier", "c", "--ner", "n", "--sets", "classifier+ner"])
    assert [s.name for s in memory.model_sets(narrowed)] == ["classifier+ner"]
    assert memory.worker_models_env(memory.ModelSet("classifier", classifier=Path("c"))) == {
        "TEXTROUTE_WORKER_CLASSIFIER_DIR": "c",
        "TEXTROUTE_WORKER_NER_DIR": "",
    }
    joint = memory.api_models_env(memory.ModelSet("multitask", multitask=Path("m")))
    assert joint == {"TEXTROUTE_API_CLASSIFIER_DIR": "m", "TEXTROUTE_API_NER_DIR": "m"}
    with pytest.raises(SystemExit):
        memory.parse(["--sets", "everything"])


def test_asking_for_more_ag_news_messages_than_the_file_holds_is_one_error_line_and_exit_2(
    bench_module: BenchModule, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    st = bench_module("stream_throughput")
    data = tmp_path / "test.csv"
    rows = "".join(f'3,"Title {i}","Text number {i} about markets."\n' for i in range(5))
    data.write_text("label,title,description\n" + rows, encoding="utf-8")
    argv = ["--data", str(data), "--messages", "4", "--latency-messages", "3", "--skip-naive"]
    # Before any broker starts: the run would otherwise drain 4 and crash on an empty paced load.
    assert st.main(argv) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "has 5 texts, fewer than --messages 4 + --latency-messages 3" in out


def test_the_workers_log_level_is_warning_unless_asked_for_per_batch_debug_lines(
    bench_module: BenchModule,
) -> None:
    st = bench_module("stream_throughput")
    assert st.parse([]).worker_log_level == "WARNING"
    assert st.parse(["--worker-log-level", "debug"]).worker_log_level == "DEBUG"
    with pytest.raises(SystemExit):
        st.parse(["--worker-log-level", "loud"])
