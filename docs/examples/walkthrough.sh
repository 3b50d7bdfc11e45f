#!/usr/bin/env bash
# Re-run every command of docs/your-data.md in a fresh clone with no data root, saving what each
# printed (OUT/NN_name.txt) and how long it took (OUT/times.tsv).
#
#   bash docs/examples/walkthrough.sh [OUT]        (default OUT: /tmp/clinprompt-walkthrough)
#
# Uses this checkout's .venv (the package itself is imported from the clone's src/, so the
# clone's shipped bank is the one read). Takes about 20 minutes on 2 CPU cores.
set -uo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${1:-/tmp/clinprompt-walkthrough}"
rm -rf "$OUT" && mkdir -p "$OUT"
git clone -q "$REPO" "$OUT/clone"
cd "$OUT/clone" || exit 1
export PYTHONPATH="$PWD/src" PATH="$REPO/.venv/bin:$PATH"
unset CLINPROMPT_DATA_ROOT
printf 'step\tseconds\texit\n' > "$OUT/times.tsv"

step() {  # step NAME COMMAND...: run it, keep its output and wall time
    local name="$1"; shift
    local t0; t0=$(date +%s.%N)
    { echo "\$ $*"; "$@"; } > "$OUT/$name.txt" 2>&1
    local rc=$?
    printf '%s\t%.1f\t%s\n' "$name" "$(echo "$(date +%s.%N) - $t0" | bc)" "$rc" >> "$OUT/times.tsv"
}

cat > my_n2c2.yaml <<'EOF'
name: my_n2c2
task_type: ner
format: brat
splits: {train: n2c2/train, test: n2c2/test}
labels: [Drug, Dose]
EOF

uptime > "$OUT/uptime_start.txt"
step 00_show clinprompt bank show builtin
step 01_fingerprint clinprompt adapt smoke --bank builtin --dataset docs/examples/med_notes.yaml --out x --run-dir runs/x
step 02_validate clinprompt data validate docs/examples/med_notes.yaml
step 03_bad_config clinprompt adapt cpu --bank builtin --dataset my_n2c2.yaml --out my_bank
step 04_adapt clinprompt adapt cpu --bank builtin --dataset docs/examples/med_notes.yaml --out my_bank
step 05_baseline clinprompt baseline cpu --dataset docs/examples/med_notes.yaml --run-dir runs/med_notes
step 06_evaluate clinprompt evaluate --run-dir runs/med_notes --all
step 07_report clinprompt report runs/med_notes --no-plots
clinprompt serve --bank my_bank --port 8765 > "$OUT/08_serve.txt" 2>&1 &
SERVER=$!
for _ in $(seq 120); do curl -sf localhost:8765/healthz > /dev/null && break; sleep 1; done
step 09_curl curl -s -w '\n%{time_total} s\n' localhost:8765/v1/predict -H 'content-type: application/json' \
    -d '{"task": "med_notes", "inputs": [{"id": "1", "text": "Started metformin 500 mg twice daily for type 2 diabetes."}]}'
kill -TERM "$SERVER"; wait "$SERVER"
step 10_validate_jsonl clinprompt data validate docs/examples/med_statements.yaml
step 11_adapt_jsonl clinprompt adapt cpu --bank my_bank --dataset docs/examples/med_statements.yaml
step 12_baseline_jsonl clinprompt baseline cpu --dataset docs/examples/med_statements.yaml --run-dir runs/med_statements
step 13_evaluate_jsonl clinprompt evaluate --run-dir runs/med_statements --all
step 14_report_jsonl clinprompt report runs/med_statements --no-plots
uptime > "$OUT/uptime_end.txt"
cat "$OUT/times.tsv"
