"""Line plots of benchmark figures as PNGs (matplotlib, Agg backend), by default in bench/plots/.

One function per kind of plot the bench scripts draw: `throughput_vs_batch` (texts/s against
batch size, one line per engine and model: bench/inference_speed.py --plot) and
`latency_vs_load` (end-to-end p50/p99 against offered load, one pair of lines per worker
configuration: bench/stream_throughput.py --load-sweep --plot). Both go through `line_plot`.
matplotlib is imported when a plot is drawn, so a script that draws none runs without it (it
comes with the `train` extra, not with the serving install).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Where a plot named without a directory goes.
PLOTS_DIR = Path(__file__).resolve().parent / "plots"


@dataclass(frozen=True)
class Series:
    """One line: legend label, points, matplotlib format, colour (None: next) and marker size."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    fmt: str = "-o"
    color: str | None = None
    markersize: float = 6.0


@dataclass(frozen=True)
class LoadCurve:
    """Worker latency at each offered load (messages/s) of a sweep."""

    offered: Sequence[float]
    p50_ms: Sequence[float]
    p99_ms: Sequence[float]
    #: The offered load at half the saturation rate, marked on the plot (None: not marked).
    half_saturation: float | None = None


def plot_path(path: str | Path) -> Path:
    """`path` as given, or under bench/plots/ when it names no directory; its folder is made."""
    out = Path(path)
    if not out.is_absolute() and out.parent == Path():
        out = PLOTS_DIR / out
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def line_plot(
    path: str | Path,
    series: Sequence[Series],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    xlog: bool = False,
    ylog: bool = False,
    hlines: Mapping[str, float] | None = None,
    caption: str | None = None,
) -> Path:
    """Draw `series` as lines on one pair of labelled axes (units in the labels), with a legend,
    optional labelled horizontal lines (targets) and a caption under the axes; write a PNG and
    return its path."""
    import matplotlib

    # No display on the benchmark machines: render straight to files.
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    try:
        for s in series:
            ax.plot(
                list(s.x), list(s.y), s.fmt, label=s.label, color=s.color, markersize=s.markersize
            )
        for label, y in (hlines or {}).items():
            ax.axhline(y, color="grey", linestyle=":", linewidth=1, label=label)
        if xlog:
            ax.set_xscale("log", base=2)
        if ylog:
            ax.set_yscale("log")
        # Plain numbers on log axes (120, not 1.2x10^2), at 1-2-5 steps on a base-10 one:
        # these plots are read for values.
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        plain = FuncFormatter(lambda v, _: f"{v:g}")
        for axis, log, base in ((ax.xaxis, xlog, 2), (ax.yaxis, ylog, 10)):
            if log:
                if base == 10:
                    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                axis.set_major_formatter(plain)
                axis.set_minor_formatter(NullFormatter())
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
        if caption:
            fig.text(0.01, 0.01, caption, fontsize="x-small", color="dimgrey")
            fig.tight_layout(rect=(0, 0.04, 1, 1))
        else:
            fig.tight_layout()
        out = plot_path(path)
        fig.savefig(out)
    finally:
        plt.close(fig)
    return out


def throughput_vs_batch(
    path: str | Path,
    curves: Mapping[str, Sequence[tuple[int, float]]],
    *,
    title: str = "Inference throughput against batch size",
    caption: str | None = None,
) -> Path:
    """Texts/s against batch size (log2 axis), one line per label (e.g. "classifier, ONNX
    int8") from its (batch, texts/s) points; a one-point curve is drawn as a marker."""
    series = [
        Series(label, [b for b, _ in sorted(points)], [r for _, r in sorted(points)])
        for label, points in curves.items()
    ]
    return line_plot(
        path,
        series,
        title=title,
        xlabel="batch size (texts per call)",
        ylabel="throughput (texts/s)",
        xlog=True,
        caption=caption,
    )


def latency_vs_load(
    path: str | Path,
    curves: Mapping[str, LoadCurve],
    *,
    title: str = "Worker end-to-end latency against offered load",
    target_ms: float | None = None,
    caption: str | None = None,
) -> Path:
    """p50 (dashed) and p99 (solid) end-to-end latency, ms (log axis), against offered load,
    messages/s, one colour per configuration; the p99 at half saturation of each is starred and
    `target_ms` drawn as a horizontal line."""
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    series: list[Series] = []
    for i, (name, c) in enumerate(curves.items()):
        color = colors[i % len(colors)]
        series.append(Series(f"{name} p50", c.offered, c.p50_ms, "--o", color))
        series.append(Series(f"{name} p99", c.offered, c.p99_ms, "-s", color))
        if c.half_saturation is not None and c.half_saturation in c.offered:
            at = list(c.offered).index(c.half_saturation)
            series.append(
                Series(
                    f"{name} p99 at half saturation",
                    [c.half_saturation],
                    [c.p99_ms[at]],
                    "*",
                    color,
                    markersize=14.0,
                )
            )
    hlines = {f"target p99 {target_ms:g} ms": target_ms} if target_ms is not None else None
    return line_plot(
        path,
        series,
        title=title,
        xlabel="offered load (messages/s)",
        ylabel="end-to-end latency (ms)",
        ylog=True,
        hlines=hlines,
        caption=caption,
    )
