#!/usr/bin/env bash
# bench/gpu_check.sh — the CUDA bf16 path of training, evaluation and serving, in <= 8 minutes.
#
# What it checks, on the tiny model (tiny-llama: random weights, the real SmolLM2 tokenizer), with
# --device cuda and --dtype auto, which must resolve to bf16 on the GPU:
#   env    torch sees CUDA; choose_dtype("auto", cuda) -> bf16
#   train  `clinprompt run smoke` (teachers -> distill -> adapt -> PT and LoRA baselines, two
#          targets, the smoke profile's few steps): every run's result.json records bf16, the
#          saved prompts are fp32
#   eval   `clinprompt evaluate` twice: an adapted MPT prompt on a generated task
#          (syn_vitals_ner) and the LoRA adapter on an option-scored one (syn_symptom_nli);
#          metrics.json records bf16
#   serve  `clinprompt serve` on the run's bank: start, /healthz, one /v1/predict (generate) and
#          one (score), stop; the server reports bf16
#   bench  bench/train_speed.py and bench/precision_numerics.py on the tiny model (--json), so
#          the scripts are known to run on CUDA before a real measurement
# Each part prints PASS or FAIL (and the dtype it saw); the exit code is the number of FAILs.
# Logs and JSON figures go to $OUT (the run tool brings them back) or /tmp/gpu_check.
#
# The GPU machine has no network and an image with torch, transformers (an older 5.x), peft,
# accelerate, typer, rich, httpx, numpy but no fastapi/uvicorn/pydantic: prepare once HERE, with
# network, from the repository root:
#
#   bash bench/gpu_check.sh --prepare
#
# which copies the cached SmolLM2 tokenizer (3.4 MB; the GPU machine cannot convert the GGUF)
# into .gpu_carry/cache/ and downloads the wheels the image lacks (Python 3.12, manylinux,
# about 25 MB) into .gpu_carry/wheels/; .gpu_carry/ is git-ignored through .git/info/exclude.
# Then, from this repository's session, the exact device call:
#
#   run(command="bash bench/gpu_check.sh", carry=[".gpu_carry"], timeout_s=540)
#
# Check the script on a CPU, here, with the same commands on --device cpu (fp32 there):
#
#   bash bench/gpu_check.sh --dry-run
#
# On the CPU the bench part is skipped (minutes, and the CPU benches have their own checks).
set -u -o pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
CARRY="$REPO/.gpu_carry"
MODE="gpu"
case "${1:-}" in
  --dry-run) MODE="cpu" ;;
  --prepare) MODE="prepare" ;;
  "") ;;
  *) echo "usage: bash bench/gpu_check.sh [--dry-run | --prepare]" >&2; exit 2 ;;
esac

# The wheels carried to the GPU machine (the image has the rest; see the header). Versions are
# this repository's tested ones.
WHEELS=(
  transformers==5.24.0 huggingface_hub==2.4.0 httpx2==2.16.2 httpcore2==2.16.2
  truststore==0.10.5 hf-xet peft==0.21.2 fastapi==0.165.0 starlette==1.10.0
  uvicorn==0.54.0 pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0
  annotated-doc==0.0.7 typing-inspection==0.4.5 opentelemetry-api==1.45.2
  platformdirs==4.14.9 h11==0.16.0
)

if [ "$MODE" = "prepare" ]; then
  PY="${PYTHON:-$REPO/.venv/bin/python}"
  mkdir -p "$CARRY/cache/tokenizers" "$CARRY/wheels"
  grep -qx '/.gpu_carry/' .git/info/exclude 2>/dev/null || echo '/.gpu_carry/' >>.git/info/exclude
  SRC="$("$PY" -c 'from clinprompt.backbone import cache_root, load_tokenizer; load_tokenizer(); print(cache_root())')"
  TOK="$SRC/tokenizers/smollm2-135m"
  [ -f "$TOK/tokenizer.json" ] || TOK="$SRC/backbones/smollm2-135m"
  mkdir -p "$CARRY/cache/tokenizers/smollm2-135m"
  cp "$TOK"/tokenizer.json "$TOK"/tokenizer_config.json "$CARRY/cache/tokenizers/smollm2-135m/"
  cp "$TOK"/*.jinja "$CARRY/cache/tokenizers/smollm2-135m/" 2>/dev/null || true
  for w in "${WHEELS[@]}"; do
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform any -d "$CARRY/wheels" "$w" \
      || { echo "could not download $w" >&2; exit 1; }
  done
  du -sh "$CARRY"
  echo "prepared: carry .gpu_carry (run(command=\"bash bench/gpu_check.sh\", carry=[\".gpu_carry\"], timeout_s=540))"
  exit 0
fi

# ---- environment: the repository's source, the carried wheels and tokenizer
OUTDIR="${OUT:-/tmp/gpu_check}"
WORK="$(mktemp -d /tmp/gpu_check.XXXXXX)"
mkdir -p "$OUTDIR"
if [ "$MODE" = "gpu" ]; then
  PY="${PYTHON:-python3}"
  DEVICE="cuda"
  EXPECT="bf16"
else
  PY="${PYTHON:-$REPO/.venv/bin/python}"
  DEVICE="cpu"
  EXPECT="fp32"  # the tiny model on a CPU is fp32 unless forced
fi
SITE=""
if [ "$MODE" = "gpu" ] && ls "$CARRY"/wheels/*.whl >/dev/null 2>&1; then
  SITE=/tmp/gpu_check_site
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$CARRY"/wheels/*.whl >"$OUTDIR/pip.log" 2>&1 \
    || echo "warning: installing the carried wheels failed (see pip.log)"
fi
export PYTHONPATH="${SITE:+$SITE:}$REPO/src"
if [ -f "$CARRY/cache/tokenizers/smollm2-135m/tokenizer.json" ]; then
  export CLINPROMPT_CACHE="$WORK/cache"  # a writable copy: the dtype probe cache lands there too
  mkdir -p "$CLINPROMPT_CACHE" && cp -r "$CARRY/cache/." "$CLINPROMPT_CACHE/"
fi
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
CP=("$PY" -m clinprompt)
FAILS=0
SUMMARY=()

result() {  # result PART STATUS DETAIL
  echo "[$2] $1: $3"
  SUMMARY+=("$2 $1: $3")
  [ "$2" = "FAIL" ] && FAILS=$((FAILS + 1))
  return 0
}

echo "gpu_check ($MODE): device $DEVICE, expecting $EXPECT; python $("$PY" -V 2>&1); logs in $OUTDIR"

# ---- env
if ENV_OUT="$("$PY" - "$DEVICE" 2>"$OUTDIR/env.log" <<'EOF'
import sys, torch, transformers, peft
from clinprompt.precision import choose_dtype, machine_info
dev = torch.device(sys.argv[1])
if dev.type == "cuda" and not torch.cuda.is_available():
    raise SystemExit("CUDA is not available")
choice = choose_dtype("auto", dev, 576, 1536)
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
print(f"{choice.name} ({choice.reason}); torch {torch.__version__}, transformers "
      f"{transformers.__version__}, peft {peft.__version__}, GPU {gpu}, CPU {machine_info()['cpu']}")
EOF
)"; then
  result env PASS "$ENV_OUT"
else
  result env FAIL "$(tail -3 "$OUTDIR/env.log" | tr '\n' ' ')"
fi

# ---- train: the smoke profile on two targets, every stage
RUN="$WORK/smoke"
if timeout 240 "${CP[@]}" run smoke "output_dir=$RUN" "backbone.device=$DEVICE" backbone.dtype=auto \
  "data.targets=[syn_vitals_ner,syn_symptom_nli]" "adapt.modes=[full,zero]" train.progress=false \
  >"$OUTDIR/train.log" 2>&1; then
  if DT="$("$PY" - "$RUN" "$EXPECT" 2>>"$OUTDIR/train.log" <<'EOF'
import json, sys
from pathlib import Path
from safetensors.torch import load_file
run, expect = Path(sys.argv[1]), sys.argv[2]
results = sorted(run.rglob("result.json"))
assert results, "no training run finished"
seen = {json.loads(p.read_text())["precision"]["dtype"] for p in results}
assert seen == {expect}, f"training runs recorded {seen}, expected {expect}"
weights = sorted(run.rglob("final.safetensors"))
dtypes = {str(t.dtype) for p in weights for t in load_file(str(p)).values()}
assert dtypes == {"torch.float32"}, f"saved weights are {dtypes}, expected fp32"
reason = json.loads(results[0].read_text())["precision"]["reason"]
print(f"{len(results)} training runs in {expect} ({reason}); {len(weights)} saved weight files fp32")
EOF
  )"; then
    result train PASS "$DT"
  else
    result train FAIL "$(tail -2 "$OUTDIR/train.log" | tr '\n' ' ')"
  fi
else
  result train FAIL "clinprompt run smoke failed or timed out: $(tail -3 "$OUTDIR/train.log" | tr '\n' ' ')"
fi

# ---- eval: an MPT prompt (generation) and a LoRA adapter (option scoring)
eval_one() {  # eval_one NAME DATASET ARTIFACT [--task TASK]
  local name="$1" dataset="$2" artifact="$3"
  shift 3
  if [ ! -e "$artifact" ]; then
    result "eval $name" FAIL "no artifact $artifact (did train pass?)"
    return
  fi
  if timeout 120 "${CP[@]}" evaluate --dataset "$dataset" --artifact "$artifact" "$@" --limit 8 \
    --device "$DEVICE" --dtype auto --out "$WORK/eval_$name" >"$OUTDIR/eval_$name.log" 2>&1; then
    local got
    got="$("$PY" -c "import json,sys; m=json.load(open(sys.argv[1])); print(m['precision']['dtype'], m['n'], m['primary_metric'], round(m['metrics'][m['primary_metric']], 3))" "$WORK/eval_$name/metrics.json" 2>>"$OUTDIR/eval_$name.log")"
    if [ "${got%% *}" = "$EXPECT" ]; then
      result "eval $name" PASS "dtype, n, metric: $got"
    else
      result "eval $name" FAIL "metrics.json says: ${got:-nothing}"
    fi
  else
    result "eval $name" FAIL "$(tail -3 "$OUTDIR/eval_$name.log" | tr '\n' ' ')"
  fi
}
eval_one mpt syn_vitals_ner "$RUN/bank" --task syn_vitals_ner
eval_one lora syn_symptom_nli "$RUN/baselines/lora/syn_symptom_nli/full/adapter"

# ---- serve: start, one generation and one scoring request, stop
PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
if [ -f "$RUN/bank/bank.json" ]; then
  env -u CLINPROMPT_API_KEY "${CP[@]}" serve --bank "$RUN/bank" --port "$PORT" --watch 0 \
    --device "$DEVICE" --dtype auto --log-level warning >"$OUTDIR/serve.log" 2>&1 &
  SERVER=$!
  if SERVED="$("$PY" - "$PORT" "$EXPECT" "$OUTDIR/serve.log" 2>>"$OUTDIR/serve.log" <<'EOF'
import sys, time, httpx
port, expect, log = sys.argv[1], sys.argv[2], sys.argv[3]
base = f"http://127.0.0.1:{port}"
for _ in range(240):
    try:
        if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
            break
    except httpx.HTTPError:
        pass
    time.sleep(0.5)
else:
    raise SystemExit("the server did not become healthy in 120 s")
gen = httpx.post(f"{base}/v1/predict", timeout=120, json={
    "task": "syn_vitals_ner", "inputs": [{"text": "BP 128/82 mmHg, HR 74 bpm, SpO2 97%."}],
    "mode": "generate", "max_new_tokens": 8})
assert gen.status_code == 200, f"generate: {gen.status_code} {gen.text[:300]}"
score = httpx.post(f"{base}/v1/predict", timeout=120, json={
    "task": "syn_symptom_nli", "inputs": [{"premise": "The patient reports chest pain.",
                                           "hypothesis": "The patient has pain."}]})
assert score.status_code == 200, f"score: {score.status_code} {score.text[:300]}"
line = next((l for l in open(log) if l.startswith("backbone dtype:")), "")
assert line.split()[2:3] == [expect], f"the server reported {line.strip()!r}, expected {expect}"
out = gen.json()["outputs"][0]
print(f"{line.strip()}; generated {out['generated_tokens']} tokens; scored via {score.json()['outputs'][0]['mode']}")
EOF
  )"; then
    result serve PASS "$SERVED"
  else
    result serve FAIL "$(tail -3 "$OUTDIR/serve.log" | tr '\n' ' ')"
  fi
  kill -INT "$SERVER" 2>/dev/null
  for _ in $(seq 20); do kill -0 "$SERVER" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$SERVER" 2>/dev/null && kill -KILL "$SERVER" 2>/dev/null
  wait "$SERVER" 2>/dev/null
else
  result serve FAIL "no bank at $RUN/bank (did train pass?)"
fi

# ---- bench: the speed and numerics scripts on CUDA (skipped on the CPU dry run)
if [ "$MODE" = "gpu" ]; then
  if timeout 150 "$PY" bench/train_speed.py --backbone tiny-llama --device cuda --dtype auto \
    --examples 8 --json "$OUTDIR/train_speed_tiny.json" >"$OUTDIR/bench_train_speed.log" 2>&1; then
    result "bench train_speed" PASS "$(grep -m1 'same batches:' "$OUTDIR/bench_train_speed.log")"
  else
    result "bench train_speed" FAIL "$(tail -3 "$OUTDIR/bench_train_speed.log" | tr '\n' ' ')"
  fi
  if timeout 120 "$PY" bench/precision_numerics.py --backbone tiny-llama --device cuda \
    --dataset syn_symptom_nli --steps 6 --eval-every 2 --test-limit 16 \
    --json "$OUTDIR/precision_numerics_tiny.json" >"$OUTDIR/bench_numerics.log" 2>&1; then
    result "bench precision_numerics" PASS "$(tail -2 "$OUTDIR/bench_numerics.log" | head -1)"
  else
    result "bench precision_numerics" FAIL "$(tail -3 "$OUTDIR/bench_numerics.log" | tr '\n' ' ')"
  fi
else
  result bench SKIP "the CPU dry run does not time the benches"
fi

echo
echo "==== gpu_check ($MODE, device $DEVICE): $FAILS FAIL"
printf '  %s\n' "${SUMMARY[@]}" | tee "$OUTDIR/summary.txt"
rm -rf "$WORK"
exit "$FAILS"
