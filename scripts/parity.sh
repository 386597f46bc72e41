#!/usr/bin/env bash
# scripts/parity.sh: our CPU (or CUDA) engine against llama.cpp on the oracle's synthetic models, with
# the oracle's compare.py. Needs the oracle (../shared/oracle/setup.sh) and a build of gemma4.
#
#   scripts/parity.sh [--preset tiny|small] [--device cpu|cuda] [--dir DIR]
#
# For the preset's f32 file: prompts of 1, 17, 600 and 2500 tokens (cut from tests/golden/prompt.txt
# repeated), llama.cpp CPU with --kv-type f32 --fa off vs `gemma4 logits --kv f32`; thresholds rel_l2
# <= 1e-3 and top-1 = 1. For the Q8_0 and Q4_K_M files (600 tokens): vs ref_forward.py (numpy float64
# on the dequantized weights) rel_l2 <= 2e-3 and top-1 = 1, and vs llama.cpp CPU rel_l2 <= 3.5e-2 /
# 9.8e-2 (the CUDA-vs-CPU distance of llama.cpp itself in the oracle README). Exit status: failures.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
ORACLE="${ORACLE_DIR:-$ROOT/../shared/oracle}"
[ -n "${ORACLE_DUMP:-}" ] || source "${ORACLE_HOME:-$HOME/.cache/gemma4-oracle}/env-cpu.sh"
PY="${ORACLE_PYTHON:-/usr/bin/python3}"
preset=small device=cpu dir=""
while [ $# -gt 0 ]; do
    case "$1" in
        --preset) preset="$2"; shift 2 ;;
        --device) device="$2"; shift 2 ;;
        --dir) dir="$2"; shift 2 ;;
        *) echo "parity.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
dir="${dir:-/tmp/gemma4-parity-$preset}"
mkdir -p "$dir"
G4="${GEMMA4_BIN:-$ROOT/build/examples/gemma4}"
[ -x "$G4" ] || { echo "build gemma4 first ($G4)"; exit 2; }

echo "== models ($preset) in $dir"
[ -f "$dir/gemma4-$preset-f32.gguf" ] || "$PY" "$ORACLE/make_model.py" --preset "$preset" --dtype f32 --what text \
    --out "$dir" --quantize Q8_0,Q4_K_M > "$dir/make.log" 2>&1 || { cat "$dir/make.log"; exit 2; }
for i in 1 2 3 4; do cat tests/golden/prompt.txt; done > "$dir/text.txt"
"$ORACLE_BIN/llama-tokenize" -m "$dir/gemma4-$preset-f32.gguf" -f "$dir/text.txt" --ids --log-disable 2>/dev/null \
    | tail -n1 | tr -d '[] ' > "$dir/ids.txt"

fails=0
cmp() { "$PY" "$ORACLE/compare.py" "$@" || fails=$((fails + 1)); }
run_case() {  # $1 quant, $2 n
    local m="$dir/gemma4-$preset-$1.gguf" ids="$dir/ids-$2.txt" ref="$dir/ref-$1-$2" ours="$dir/ours-$1-$2"
    cut -d, -f1-"$2" "$dir/ids.txt" > "$ids"
    [ -f "$ref/logits.npy" ] || "$ORACLE_DUMP" -m "$m" --tokens-file "$ids" -o "$ref" --kv-type f32 --fa off -c 4096 \
        > "$ref.log" 2>&1 || { echo "gemma4-dump failed: $ref.log"; return 1; }
    "$G4" logits --model "$m" --tokens-file "$ids" --out "$ours" --kv f32 --device "$device" --quiet --ctx 4096 > /dev/null
}
echo "== f32 file vs llama.cpp CPU (rel_l2 <= 1e-3, top1 = 1)"
for n in 1 17 600 2500; do
    run_case f32 "$n" && cmp "$dir/ours-f32-$n/logits.npy" "$dir/ref-f32-$n" --label "$preset f32 $n tok" --max-rel-l2 1e-3 --min-top1 1
done
for q in Q8_0 Q4_K_M; do
    bound=3.5e-2; [ "$q" = Q4_K_M ] && bound=9.8e-2
    echo "== $q file: vs numpy float64 (rel_l2 <= 2e-3, top1 = 1), vs llama.cpp CPU (rel_l2 <= $bound)"
    run_case "$q" 600 || { fails=$((fails + 1)); continue; }
    "$PY" "$ORACLE/ref_forward.py" "$dir/gemma4-$preset-$q.gguf" --tokens-npy "$dir/ref-$q-600" -o "$dir/np-$q-600.npy" > /dev/null
    cmp "$dir/ours-$q-600/logits.npy" "$dir/np-$q-600.npy" --label "$preset $q vs numpy" --max-rel-l2 2e-3 --min-top1 1
    cmp "$dir/ours-$q-600/logits.npy" "$dir/ref-$q-600" --label "$preset $q vs llama.cpp" --max-rel-l2 "$bound"
done
echo "== $preset on $device: $fails failure(s)"
exit "$fails"
