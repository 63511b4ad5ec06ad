#!/usr/bin/env bash
# DrNAS on a GPU, runbook step 2 (results/drnas/GPU.md): one leg of a paper-scale search that spans GPU sessions.
#
# A plain NB201 search took 17.5 min on an H100, more than one session's 15 minutes of device time, and the device
# machine keeps nothing between sessions. So each session runs one leg: it resumes from the hand-off checkpoint
# committed by the previous leg (results/drnas/full/handoff/RUN.pt, about 14 MB), searches until SECONDS, and sends
# back either the new hand-off checkpoint (not finished) or the finished run's result.json. From the repository
# root on the device machine, carrying the data pack (`nasrepro data pack .device/data` here first):
#
#     bash reproduce/device/drnas_gpu_search_leg.sh cifar10-drnas_nb201-seed0     # carry [".device/data"], timeout_s 590
#
# Back here, with F the call's files_at folder and R the run:
#   - $F/R.pt came back (not finished):  cp $F/R.pt results/drnas/full/handoff/R.pt; commit it (the next leg needs it)
#   - $F/R.result.json came back (finished): mkdir -p results/drnas/full/runs/R; cp $F/R.result.json
#     results/drnas/full/runs/R/result.json; git rm results/drnas/full/handoff/R.pt; commit
#   then rebuild the report here (no GPU needed; unfinished searches show their epochs from the hand-offs):
#     nasrepro reproduce drnas --full --report-only; nasrepro report
# $F/R.log holds the leg's per-epoch lines either way.
# A second leg on the same machine while it is still warm (within 30 s of the last call) finds the first leg's run
# folder (git-ignored outputs stay there between calls) and resumes from whichever of it and the hand-off holds more
# epochs, so the next call can follow at once and the copying here can wait (session 22; smoke-tested on the CPU:
# fresh start, run folder ahead with and without a hand-off, hand-off only, and the finishing branch).
#
# SECONDS (2nd argument, default 540) bounds the search; the checkpoint of the last finished epoch is what goes back,
# so a leg loses at most the epoch it was in. SCALE, DEVICE, PYTHON and RESULTS are for a smoke run elsewhere, e.g.
# SCALE=quick DEVICE=cpu RESULTS=/tmp/leg OUT=/tmp/leg-out bash reproduce/device/drnas_gpu_search_leg.sh \
#     cifar10-drnas_nb201-seed0 30
set -u
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 RUN [SECONDS]  (RUN as in 'nasrepro reproduce drnas --full --only RUN', e.g. cifar10-drnas_nb201-seed0)" >&2
  exit 2
fi
RUN="$1" LIMIT="${2:-540}"
case "$LIMIT" in ''|*[!0-9]*) echo "error: SECONDS must be a whole number of seconds, got '$LIMIT'" >&2; exit 2 ;; esac
export NASREPRO_DATA="${NASREPRO_DATA:-$PWD/.device/data}" NASREPRO_CACHE="${NASREPRO_CACHE:-/tmp/nrc}"
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
export TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=0  # NVIDIA's containers force TF32 matmuls otherwise; the searches are fp32
SCALE="${SCALE:-full}" DEVICE="${DEVICE:-cuda}" PYTHON="${PYTHON:-python3}"
RESULTS="${RESULTS:-results/drnas/$SCALE}" OUT="${OUT:-$PWD/out}"
HANDOFF="$RESULTS/handoff/$RUN.pt" RUN_DIR="$RESULTS/runs/$RUN"
mkdir -p "$OUT" "$RUN_DIR"

if [ -f "$RUN_DIR/result.json" ]; then
  echo "error: $RUN_DIR/result.json exists: the search has finished, nothing to run" >&2
  exit 2
fi
# the epochs a checkpoint holds (empty if it cannot be read)
epochs_of() { "$PYTHON" -c "import sys; from algorithms.nn.search import load_search_checkpoint as load
print(load(sys.argv[1])['next_epoch'])" "$1" 2>/dev/null; }
held="" handed=""
[ -f "$RUN_DIR/checkpoint.pt" ] && held=$(epochs_of "$RUN_DIR/checkpoint.pt")
about="no hand-off"
if [ -f "$HANDOFF" ]; then
  handed=$(epochs_of "$HANDOFF")
  about=$([ -n "$handed" ] && echo "the hand-off has $handed" || echo "the hand-off cannot be read")
fi
if [ -n "$held" ] && { [ -z "$handed" ] || [ "$held" -ge "$handed" ]; }; then
  # a second leg on the same (still warm) machine: its run folder is ahead of the committed hand-off (or the hand-off
  # cannot be read)
  echo "== resuming from $RUN_DIR/checkpoint.pt ($held epochs done; $about)"
  start=$held
elif [ -f "$HANDOFF" ]; then
  # the search resumes from the epoch after the hand-off's last; an unreadable one it refuses in one line
  cp "$HANDOFF" "$RUN_DIR/checkpoint.pt"
  echo "== resuming from $HANDOFF (${handed:-?} epochs done)"
  start=${handed:-0}
else
  echo "== no $HANDOFF: the search starts at epoch 0"
  start=0
fi

# the search's own messages name a wrong run or a config that does not fit its checkpoint in one line
timeout -k 10 "$LIMIT" "$PYTHON" -m reproduce drnas --"$SCALE" --device "$DEVICE" --out "$RESULTS" --only "$RUN" \
  2>&1 | tee "$OUT/$RUN.log"
status=${PIPESTATUS[0]}

if [ -f "$RUN_DIR/result.json" ]; then
  cp "$RUN_DIR/result.json" "$OUT/$RUN.result.json"
  echo "== finished: $OUT/$RUN.result.json"
elif [ -f "$RUN_DIR/checkpoint.pt" ] && now=$(epochs_of "$RUN_DIR/checkpoint.pt") && [ -n "$now" ] \
    && [ "$now" -gt "$start" ]; then
  cp "$RUN_DIR/checkpoint.pt" "$OUT/$RUN.pt"
  echo "== not finished (exit $status, $now epochs done): hand-off checkpoint $OUT/$RUN.pt; commit it as $HANDOFF"
elif [ -f "$RUN_DIR/checkpoint.pt" ] && [ -z "${now:-}" ] && ! cmp -s "$RUN_DIR/checkpoint.pt" "$HANDOFF"; then
  # its epochs could not be counted here (the search wrote it, so it is most likely fine): send it back anyway
  cp "$RUN_DIR/checkpoint.pt" "$OUT/$RUN.pt"
  echo "== not finished (exit $status; its epochs could not be counted here): hand-off checkpoint $OUT/$RUN.pt"
else
  echo "error: no epoch finished in this leg (exit $status); nothing to hand off" >&2
  exit 1
fi
