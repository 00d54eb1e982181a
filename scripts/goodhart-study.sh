#!/usr/bin/env bash
# The whole study of docs/GOODHART.md on the shipped caption-noise model, two jobs at a time (one
# thread each): reward models of 3 sizes x 2 data sizes, best-of-n against each, RL against each
# size (3 seeds against the default size), GRPO-Guard and AC-Flow at the same budget, a KL penalty,
# and conservative ensembles; then the charts. Every job is a call of scripts/goodhart.sh, which
# skips what is done: run it again after an interruption and it continues.
#   bash scripts/goodhart-study.sh [--jobs 2] [--out outputs/goodhart]
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
# 2. best-of-n against each, and RL: GRPO against each size, three seeds against rm-large
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
# 4. the charts: everything, and one per question
$g --stage chart
echo "goodhart-study: $out/goodhart.png, $out/rl-*/, $out/bon-*/ (docs/GOODHART.md reads them)" >&2
