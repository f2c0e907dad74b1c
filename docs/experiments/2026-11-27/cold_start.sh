#!/bin/sh
# Check (issue #7): the trainer's first epoch on an empty inductor cache (every kernel compiled),
# with each step split over 2 processes of 1 thread (the default with 2 threads) and with one
# process of 2 threads; 16 train and 8 val images, so the epoch is almost all first step.
# Prints each run's epoch-1 seconds from its log.csv.
#   sh docs/experiments/2026-11-27/cold_start.sh DATA
set -e
data=${1:-../shared/data/isic2018}
for p in 2 1; do
  cache=$(mktemp -d); out=$(mktemp -d)
  TORCHINDUCTOR_CACHE_DIR=$cache egeunet-train --data "$data" --epochs 1 --limit-train 16 --limit-val 8 \
    --threads 2 --processes $p --quiet --out "$out/run" > /dev/null 2>&1
  echo "--processes $p, empty cache: epoch 1 took $(sed -n 2p "$out/run/log.csv" | cut -d, -f6) s"
  rm -rf "$cache" "$out"
done
