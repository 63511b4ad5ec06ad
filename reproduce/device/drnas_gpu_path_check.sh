#!/usr/bin/env bash
# DrNAS on a GPU, runbook step 1 (results/drnas/GPU.md): does the GPU path search like the CPU path?
#
# One device command of at most about 9.5 minutes (its pieces' limits, 525 s, plus kill grace and packing), sized for a
# 15-minute device budget. From the repository root on the device machine, carrying the data pack (`nasrepro data pack
# .device/data` here first):
#
#     bash reproduce/device/drnas_gpu_path_check.sh          # carry [".device/data"], timeout_s 590
#
# Every piece has its own time limit and writes its files after every epoch, so a slow piece costs only itself;
# after every piece all that is written is packed again into $OUT/gpu_path_check.tar.gz (so even a command cut at
# its own limit sends back what was done), and the tables are printed at the end. In order of what decides most:
#   1. the GPU tests, among them the paired CUDA-graph-vs-eager search (same α after every step), the data
#      stream on CUDA (shuffle, crops and flips uniform and independent; tests/test_image_data.py) and the 3x3
#      average pool (tests/test_supernet.py): torch's CUDA channels_last backward with padding is wrong
#      (pytorch/pytorch#188344), our pool routes around it since session 12, and an xfail line records how far off
#      torch's own kernel is on this machine and what it does to the supernet's weight gradient; and (session 14)
#      every other channels_last kernel (max and other pools, the ops' convolutions with batch norm) and small
#      NB201 / DARTS-space networks' weight gradients against the CPU's;
#   2. the plain paper-scale search, epochs 0-1, seeds 0 and 1, with CUDA graphs (the configured path, with the
#      guarded pool: the searches before session 12 ran torch's pool and trailed);
#   3. seed 0, epochs 0-1, graphed, NCHW (`channels_last=false`): the same random numbers as 2's seed 0 on torch's
#      NCHW kernels, so 2 and 3 agree unless a channels_last kernel other than the pool is wrong too;
#   4. seed 0, epoch 0, eager (`cuda_graphs=false`; an eager epoch may take about a minute): graphed and eager
#      runs of one seed draw the same random numbers, so their train accuracy and α agree within float noise;
#   5. DARTS ([darts_nb201], graphed), epochs 0-1, seed 0: no Dirichlet sampler at all, so a DARTS supernet that
#      also trails the CPU's and the official run's puts a fault in the shared weight-training path (epoch 0 with
#      graph capture took 25 s on an H100, later epochs 10.5 s: epoch 1 may be cut by the limit, epoch 0 not);
#   6. the architecture gradient on the GPU against the CPU (same checkpoint, batches and Dirichlet draws).
# The references: the official runs (reproduce/papers/drnas_official_log.py; DrNAS train accuracy 22.6 / 21.9 %
# after epoch 0, 29.5 / 29.4 % after epoch 1; DARTS 32.3 %, 43.0 %) and the CPU (DrNAS 21.7 / 22.8 % after epoch 0
# for seeds 0 / 1, close to the official α trajectory through epoch 19; DARTS on the official run's pace and α
# through the epochs of GPU.md session 12); the H100 runs had
# DrNAS 19.7-20.2 % and DARTS 30.0 %, 38.5 % after epochs 0 and 1.
#
# PYTHON, DEVICE, IMAGES, SET (extra `--set KEY=VALUE` words for every search) and RESULTS are for a smoke run
# elsewhere, e.g. RESULTS=/tmp/smoke DEVICE=cpu IMAGES=cifar10-subset SET="--set channels=4 --set cells=1" bash ...
set -u
export NASREPRO_DATA="${NASREPRO_DATA:-$PWD/.device/data}" NASREPRO_CACHE="${NASREPRO_CACHE:-/tmp/nrc}"
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
# NVIDIA's containers set this to 1, which forces TF32 matmuls whatever torch is told: the fp32 comparisons of piece 1
# (and fp32_strict searches) need it off
export TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=0
DEVICE="${DEVICE:-cuda}" IMAGES="${IMAGES:-cifar10}" SET="${SET:-}" PYTHON="${PYTHON:-python3}"
OUT="${OUT:-$PWD/out}"
RESULTS="${RESULTS:-results/drnas/gpu_path_check}"
mkdir -p "$OUT" "$RESULTS"
log() { echo "== $(date -u +%H:%M:%S) $*"; }
# all of $RESULTS but the run folders (checkpoints): a device run sends back at most 8 files
pack() { tar -czf "$OUT/gpu_path_check.tar.gz" --exclude=runs -C "$(dirname "$RESULTS")" "$(basename "$RESULTS")"; }
limit() { timeout -k 5 "$@"; }

log "environment"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  $PYTHON -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())"
  env | grep -E '^(TORCH_ALLOW_TF32|NVIDIA_TF32|CUBLAS|CUDNN)' || echo "no TF32/cuBLAS/cuDNN environment variables"
} | tee "$RESULTS/environment.txt"

if [ "$DEVICE" = cuda ]; then
  log "1. GPU tests"
  # -v: one line per test as it ends, -s: the pool record's line at once, so a run cut by the limit keeps both
  limit 120 $PYTHON -m pytest -v -s -rxs -m gpu -p no:cacheprovider tests/test_drnas.py tests/test_image_data.py \
    tests/test_supernet.py 2>&1 \
    | tee "$RESULTS/gpu_tests.txt" | grep -E "FAIL|ERROR|XFAIL|XPASS|POOL RECORD|passed|failed" | tail -40
  pack
fi

CHECK="$PYTHON -m reproduce.drnas_image_check --qualities stored --device $DEVICE --images $IMAGES --out $RESULTS"
log "2. epochs 0-1 with CUDA graphs, seeds 0 and 1"
limit 100 $CHECK --epochs 2 --seeds 0,1 $SET
pack
log "3. epochs 0-1 with CUDA graphs, NCHW, seed 0"
limit 60 $CHECK --epochs 2 --seeds 0 --set channels_last=false $SET
pack
log "4. epoch 0 eager, seed 0"
limit 95 $CHECK --epochs 1 --seeds 0 --set cuda_graphs=false $SET
pack

log "5. DARTS with CUDA graphs, epochs 0-1, seed 0"
limit 75 $CHECK --epochs 2 --seeds 0 --method darts $SET
pack

log "6. the architecture gradient, GPU against CPU"
# piece 2's seed-0 checkpoint (after its last finished epoch), not piece 3's or 4's (their folders name the
# setting they change)
CKPT=$(ls -d $RESULTS/runs/stored-seed0*/checkpoint.pt 2>/dev/null | grep -v -e cuda_graphs -e channels_last | head -1)
if [ -n "$CKPT" ] && [ "$DEVICE" = cuda ]; then
  limit 75 $PYTHON -m reproduce.drnas_gradient_check "$CKPT" --settings fp32@cpu,fp32@cuda,fp32_strict@cuda \
    --batches 8 --out "$RESULTS"
else
  echo "skipped (no graphed seed-0 checkpoint, or no GPU)"
fi

log "results: \$OUT/gpu_path_check.tar.gz (untar it in results/drnas/ here)"
pack
for f in "$RESULTS"/*.md; do [ -f "$f" ] && { echo "---- $f"; cat "$f"; }; done
log "done"
