#!/usr/bin/env bash
# The encoder-capacity study on one task: a residual U-Net whose learned encoder doubles
# its channels per level (about half the parameters), a Multi-ResNet with that budget in
# its decoder, and the small constant-width encoder; seeds interleaved so that a partial
# run still covers every model, then one table per encoder size from the finished runs.
#   experiments/encoder_capacity/run.sh <config.toml> <results dir> <steps>
set -euo pipefail
config=$1 results=$2 steps=$3
common=(--set model.width=8 --set model.decoder_blocks=0 --set "train.steps=$steps"
        --set "train.eval_every=$steps" --set "train.checkpoint_every=$steps")
wide=(--models unet:residual unet:multiresnet_matched --runs runs/encoder_capacity/wide --results "$results/wide"
      --set "model.encoder_channel_mult=[1,2,4]" --set model.encoder_blocks=2)
small=(--models unet:residual --runs runs/encoder_capacity/small --results "$results/small")
for seeds in 0 1 2 "0 1 2"; do
    # shellcheck disable=SC2086  # $seeds is a list
    python experiments/compare.py --config "$config" --reuse --seeds $seeds "${common[@]}" "${wide[@]}"
    # shellcheck disable=SC2086
    python experiments/compare.py --config "$config" --reuse --seeds $seeds "${common[@]}" "${small[@]}"
done
