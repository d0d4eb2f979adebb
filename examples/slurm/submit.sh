#!/bin/bash
# Submits a mica study as a Slurm job array of N shards plus a merge-and-report job that runs
# once every shard has succeeded.
#
#   examples/slurm/submit.sh STUDY.toml [N] [RESULTS]   (N = 8, RESULTS = results by default)
#
# MICA (the mica binary, default: mica on PATH), MICA_RUN_ARGS and MICA_SBATCH_ARGS (more sbatch flags
# for both jobs, e.g. "--partition=gpu --gres=gpu:1") are passed on.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
STUDY=${1:?usage: submit.sh STUDY.toml [N] [RESULTS]}
N=${2:-8}
RESULTS=${3:-results}
export STUDY RESULTS
# shellcheck disable=SC2086
array=$(sbatch --parsable --array="0-$((N - 1))" --export=ALL ${MICA_SBATCH_ARGS:-} "$here/study-array.sbatch")
array=${array%%;*}
# shellcheck disable=SC2086
merge=$(sbatch --parsable --dependency="afterok:$array" --kill-on-invalid-dep=yes --export=ALL \
  ${MICA_SBATCH_ARGS:-} "$here/merge-report.sbatch")
echo "array job $array ($N shards), merge-and-report job ${merge%%;*}"
