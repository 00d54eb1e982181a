#!/usr/bin/env bash
# The whole study of docs/GOODHART.md on the shipped caption-noise model, two jobs at a time (one
# thread each): reward models of 3 sizes x 2 data sizes, best-of-n against each, RL against each
# size (3 seeds each), GRPO-Guard, AC-Flow and a KL penalty at the same
# budget, and conservative ensembles; then a chart and a table per question. Every job is a call
# of scripts/goodhart.sh, which skips what is done: run it again after an interruption and it
# continues.
#   bash scripts/goodhart-study.sh [--jobs 2] [--out outputs/goodhart]
# About 2 1/2 hours on 2 cores (reward models 25 minutes, best-of-n half a minute each, an RL run
# 8 minutes at one thread beside another, AC-Flow 13). docs/GOODHART.md reads the results.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=2 out=outputs/goodhart
while (($#)); do
  case $1 in
    --jobs) jobs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "goodhart-study.sh: unknown option $1" >&2; exit 64 ;;
  esac
done
swift build -c release 2>&1 | tail -n 1
mkdir -p "$out"
g="bash scripts/goodhart.sh --out $out --threads 1"
small_data=6000   # labelled pairs of the smaller data size (the full labelling has about 47,000)
ensemble=rm-large+rm-large-seed1+rm-large-seed2
# run the lines of a phase, $jobs at a time; each job's output goes to a log beside the results
phase() {
  mkdir -p "$out/logs"
  xargs -d '\n' -n 1 -P "$jobs" bash -c 'log=$(tr -c "a-zA-Z0-9.+=-" _ <<<"${1#*--stage }" | cut -c1-120); eval "$1" >"'"$out"'/logs/$log.log" 2>&1 || echo "goodhart-study: failed: $1" >&2' _
}
# 1. the reward models (the data is labelled once, by the first)
$g --stage rm --sizes rm-large
phase <<EOL
$g --stage rm --sizes "rm-large" --pairs $small_data
$g --stage rm --sizes "rm-tiny rm-small"
$g --stage rm --sizes "rm-tiny rm-small" --pairs $small_data
EOL
# 2. best-of-n against each, and RL: GRPO against each size, three seeds each and for GRPO-Guard
#    and a KL penalty, one of AC-Flow
phase <<EOL
$g --stage bon --sizes "rm-tiny rm-small rm-large"
$g --stage rl --rl-rm rm-large --seed 1
$g --stage bon --sizes "rm-tiny rm-small rm-large" --pairs $small_data
$g --stage rl --rl-rm rm-small --seed 1
$g --stage rl --rl-rm rm-tiny --seed 1
$g --stage rl --rl-rm rm-large --seed 2
$g --stage rl --rl-rm rm-large --seed 3
$g --stage rl --rl-rm rm-large-p$small_data --seed 1
$g --stage rl --rl-rm rm-large --algo grpo-guard --seed 1
$g --stage rl --rl-rm rm-large --algo acflow --seed 1
$g --stage rl --rl-rm rm-large --beta 0.01 --seed 1
$g --stage rl --rl-rm rm-large --algo grpo-guard --seed 2
$g --stage rl --rl-rm rm-large --algo grpo-guard --seed 3
$g --stage rl --rl-rm rm-large --beta 0.01 --seed 2
$g --stage rl --rl-rm rm-large --beta 0.01 --seed 3
$g --stage rl --rl-rm rm-tiny --seed 2
$g --stage rl --rl-rm rm-small --seed 2
$g --stage rl --rl-rm rm-tiny --seed 3
$g --stage rl --rl-rm rm-small --seed 3
EOL
# 3. conservative ensembles (Coste et al.): two more members of rm-large differing by their seed
phase <<EOL
$g --stage rm --sizes rm-large --rm-seed 1
$g --stage rm --sizes rm-large --rm-seed 2
EOL
phase <<EOL
$g --stage bon --sizes $ensemble --rm-combine mean
$g --stage bon --sizes $ensemble --rm-combine min
$g --stage rl --rl-rm $ensemble --rm-combine min --seed 1
$g --stage rl --rl-rm $ensemble --rm-combine mean --seed 1
EOL
# 4. the charts, one per question, each with its table (NAME.md: gain, peak, fall, gold at equal d and proxy)
ft=.build/release/flowtune
seeds() { for s in 1 2 3; do [[ -f $out/rl-$1-$s/metrics.jsonl ]] && echo "$2=$out/rl-$1-$s"; done; }
bon() { for b in "$@"; do echo "--bon"; echo "best-of-n $b=$out/bon-$b"; done; }
# a chart of the folders that exist (a run or best-of-n not made is left out, with a note)
chart() {
  local name=$1 args=() a; shift
  while (($#)); do
    a=$1; shift
    if [[ $a == --bon ]]; then a=$1; shift; [[ -d ${a#*=} ]] && args+=(--bon "$a") || echo "goodhart-study: $name: no ${a#*=}" >&2
    elif [[ $a == *=$out/* ]]; then [[ -d ${a#*=} ]] && args+=("$a") || echo "goodhart-study: $name: no ${a#*=}" >&2
    else args+=("$a"); fi
  done
  $ft goodhart "${args[@]}" --gold shape-eval --out "$out/$name.png" >/dev/null || echo "goodhart-study: the chart $name failed" >&2
}
mapfile -t tiny < <(seeds grpo-rm-tiny "GRPO, rm-tiny")
mapfile -t small < <(seeds grpo-rm-small "GRPO, rm-small")
mapfile -t large < <(seeds grpo-rm-large "GRPO, rm-large")
mapfile -t guard < <(seeds grpo-guard-rm-large "GRPO-Guard, rm-large")
mapfile -t beta < <(seeds grpo-rm-large-beta0.01 "GRPO beta 0.01, rm-large")
mapfile -t bon_sizes < <(bon rm-tiny rm-small rm-large)
mapfile -t bon_data < <(bon rm-tiny-p$small_data rm-small-p$small_data rm-large-p$small_data rm-large)
mapfile -t bon_ensembles < <(bon rm-large ${ensemble//+/-}-mean ${ensemble//+/-}-min)
chart goodhart-sizes "${tiny[@]}" "${small[@]}" "${large[@]}" \
  "${bon_sizes[@]}" --at-d 10,15,20
chart goodhart-bon "${bon_sizes[@]}" "${bon_data[@]:0:6}" --at-d 0.44,0.8,1.1
chart goodhart-data "GRPO, rm-large-p$small_data=$out/rl-grpo-rm-large-p$small_data-1" "${large[@]}" \
  "${bon_data[@]}" --at-d 10,15,20
chart goodhart-algorithms "${large[@]}" "${guard[@]}" "AC-Flow, rm-large=$out/rl-acflow-rm-large-1" "${beta[@]}" \
  --at-d 10,15,20 --at-proxy 0.2,0.3,0.4,0.5
chart goodhart-ensembles "${large[@]}" "GRPO, min of 3=$out/rl-grpo-${ensemble//+/-}-min-1" "GRPO, mean of 3=$out/rl-grpo-${ensemble//+/-}-mean-1" \
  "${bon_ensembles[@]}" --at-d 10,15,20
echo "goodhart-study: $out/goodhart-{sizes,bon,data,algorithms,ensembles}.png and .md, $out/rl-*/, $out/bon-*/ (docs/GOODHART.md reads them)" >&2
