#!/usr/bin/env bash
# DrNAS on a GPU, runbook step 2 (results/drnas/GPU.md): one leg of paper-scale searches that span GPU sessions.
#
# A plain NB201 search takes about 17.5 min on an H100 or H200, more than one session's 15 minutes of device time,
# and the device machine keeps nothing between sessions. So each session runs one leg: it resumes the search from
# the hand-off checkpoint committed by the previous leg (results/drnas/full/handoff/RUN.pt, about 14 MB), searches
# until SECONDS, and sends back either the new hand-off checkpoint (not finished) or the finished run's result.json.
# RUN may be a comma-separated queue (RUN1,RUN2,...): runs already finished here are passed over, a run that
# finishes inside the leg hands the rest of the time to the next one (started when at least MIN_LEG_SECONDS,
# default 120, are left: start-up and epoch 0 with its graph capture take about 35 s, and each hand-off committed
# adds 14 MB to git's history, so a run is not started for a handful of epochs), and the leg stops at the first run
# it cannot finish, so at most one hand-off is ever outstanding. From the repository root on the device
# machine, carrying the data pack (`nasrepro data pack .device/data` here first):
#
#     bash reproduce/device/drnas_gpu_search_leg.sh cifar10-drnas_nb201-seed0     # carry [".device/data"], timeout_s 590
#     bash reproduce/device/drnas_gpu_search_leg.sh cifar10-drnas_nb201-seed0,cifar10-drnas_nb201-seed1 540
#
# Back here, with F the call's files_at folder, for each run R it touched:
#   - $F/R.pt came back (not finished):  cp $F/R.pt results/drnas/full/handoff/R.pt; commit it (the next leg needs it)
#   - $F/R.result.json came back (finished): mkdir -p results/drnas/full/runs/R; cp $F/R.result.json
#     results/drnas/full/runs/R/result.json; git rm results/drnas/full/handoff/R.pt (if there was one); commit
#   then rebuild the report here (no GPU needed; unfinished searches show their epochs from the hand-offs):
#     nasrepro reproduce drnas --full --report-only; nasrepro report
# $F/R.log holds each run's per-epoch lines either way.
# A second leg on the same machine while it is still warm (within 30 s of the last call) finds the first leg's run
# folder (git-ignored outputs stay there between calls) and resumes from whichever of it and the hand-off holds more
# epochs, so the next call can follow at once and the copying here can wait (session 22; smoke-tested on the CPU:
# fresh start, run folder ahead with and without a hand-off, hand-off only, and the finishing branch).
#
# SECONDS (2nd argument, default 540) bounds the whole leg; the checkpoint of the last finished epoch is what goes
# back, so a leg loses at most the epoch it was in. SCALE, DEVICE, PYTHON and RESULTS are for a smoke run elsewhere,
# e.g. SCALE=quick DEVICE=cpu RESULTS=/tmp/leg OUT=/tmp/leg-out bash reproduce/device/drnas_gpu_search_leg.sh \
#     cifar10-drnas_nb201-seed0 30
set -u
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 RUN[,RUN...] [SECONDS]  (RUN as in 'nasrepro reproduce drnas --full --only RUN', e.g. cifar10-drnas_nb201-seed0)" >&2
  exit 2
fi
QUEUE="$1" LIMIT="${2:-540}" MIN_LEG="${MIN_LEG_SECONDS:-120}"
case "$LIMIT" in ''|*[!0-9]*) echo "error: SECONDS must be a whole number of seconds, got '$LIMIT'" >&2; exit 2 ;; esac
case ",$QUEUE," in *,,*) echo "error: empty run name in '$QUEUE'" >&2; exit 2 ;; esac
case "$MIN_LEG" in ''|*[!0-9]*) echo "error: MIN_LEG_SECONDS must be a whole number of seconds, got '$MIN_LEG'" >&2; exit 2 ;; esac
export NASREPRO_DATA="${NASREPRO_DATA:-$PWD/.device/data}" NASREPRO_CACHE="${NASREPRO_CACHE:-/tmp/nrc}"
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
export TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=0  # NVIDIA's containers force TF32 matmuls otherwise; the searches are fp32
SCALE="${SCALE:-full}" DEVICE="${DEVICE:-cuda}" PYTHON="${PYTHON:-python3}"
RESULTS="${RESULTS:-results/drnas/$SCALE}" OUT="${OUT:-$PWD/out}"
mkdir -p "$OUT"

# the epochs a checkpoint holds (empty if it cannot be read)
epochs_of() { "$PYTHON" -c "import sys; from algorithms.nn.search import load_search_checkpoint as load
print(load(sys.argv[1])['next_epoch'])" "$1" 2>/dev/null; }

# leg RUN SECONDS: resume RUN and search for at most SECONDS; 0 = finished (result.json in $OUT), 3 = not finished
# (hand-off checkpoint in $OUT), 1 = no epoch finished (nothing to send back)
leg() {
  local run="$1" limit="$2" handoff="$RESULTS/handoff/$1.pt" run_dir="$RESULTS/runs/$1"
  local held="" handed="" about="no hand-off" start status now=""
  mkdir -p "$run_dir"
  [ -f "$run_dir/checkpoint.pt" ] && held=$(epochs_of "$run_dir/checkpoint.pt")
  if [ -f "$handoff" ]; then
    handed=$(epochs_of "$handoff")
    about=$([ -n "$handed" ] && echo "the hand-off has $handed" || echo "the hand-off cannot be read")
  fi
  if [ -n "$held" ] && { [ -z "$handed" ] || [ "$held" -ge "$handed" ]; }; then
    # a second leg on the same (still warm) machine: its run folder is ahead of the committed hand-off (or the
    # hand-off cannot be read)
    echo "== $run: resuming from $run_dir/checkpoint.pt ($held epochs done; $about)"
    start=$held
  elif [ -f "$handoff" ]; then
    # the search resumes from the epoch after the hand-off's last; an unreadable one it refuses in one line
    cp "$handoff" "$run_dir/checkpoint.pt"
    echo "== $run: resuming from $handoff (${handed:-?} epochs done)"
    start=${handed:-0}
  else
    echo "== $run: no $handoff: the search starts at epoch 0"
    start=0
  fi

  # the search's own messages name a wrong run or a config that does not fit its checkpoint in one line
  timeout -k 10 "$limit" "$PYTHON" -m reproduce drnas --"$SCALE" --device "$DEVICE" --out "$RESULTS" --only "$run" \
    2>&1 | tee -a "$OUT/$run.log"
  status=${PIPESTATUS[0]}

  if [ -f "$run_dir/result.json" ]; then
    cp "$run_dir/result.json" "$OUT/$run.result.json"
    echo "== $run: finished: $OUT/$run.result.json"
    return 0
  elif [ -f "$run_dir/checkpoint.pt" ] && now=$(epochs_of "$run_dir/checkpoint.pt") && [ -n "$now" ] \
      && [ "$now" -gt "$start" ]; then
    cp "$run_dir/checkpoint.pt" "$OUT/$run.pt"
    echo "== $run: not finished (exit $status, $now epochs done): hand-off checkpoint $OUT/$run.pt; commit it as $handoff"
    return 3
  elif [ -f "$run_dir/checkpoint.pt" ] && [ -z "$now" ] && ! cmp -s "$run_dir/checkpoint.pt" "$handoff"; then
    # its epochs could not be counted here (the search wrote it, so it is most likely fine): send it back anyway
    cp "$run_dir/checkpoint.pt" "$OUT/$run.pt"
    echo "== $run: not finished (exit $status; its epochs could not be counted here): hand-off checkpoint $OUT/$run.pt"
    return 3
  fi
  echo "error: $run: no epoch finished in this leg (exit $status); nothing to hand off" >&2
  return 1
}

IFS=, read -r -a runs <<< "$QUEUE"
legs=0
for run in "${runs[@]}"; do
  if [ -f "$RESULTS/runs/$run/result.json" ]; then
    echo "== $run: $RESULTS/runs/$run/result.json exists: finished, passed over"
    continue
  fi
  left=$((LIMIT - SECONDS))  # bash's SECONDS: seconds since this script started
  if [ "$legs" -gt 0 ] && [ "$left" -lt "$MIN_LEG" ]; then
    echo "== $left s left, under MIN_LEG_SECONDS ($MIN_LEG): $run waits for the next leg"
    exit 0
  fi
  legs=$((legs + 1))
  leg "$run" "$((left > 1 ? left : 1))"
  case $? in
    0) ;;                      # finished: the rest of the time goes to the next run
    3) exit 0 ;;               # handed off: the next leg resumes it
    *) exit 1 ;;
  esac
done
if [ "$legs" -eq 0 ]; then
  echo "error: every run in '$QUEUE' has finished (result.json in $RESULTS/runs): nothing to run" >&2
  exit 2
fi
