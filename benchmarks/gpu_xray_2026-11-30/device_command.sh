#!/bin/bash
# What the lent GPU ran for issue 13 (2026-11-30): install the carried wheels, then
# scripts/train_sweep.py on configs/cxr_shipped_xray.yaml with the radiographs of that
# config copied to .gpu/data (the patient split checked identical, file for file and pixel
# for pixel, to the one from ../shared/data). Common changes: 256-px patches, 192 patches per
# training image per epoch, batch 32, X-ray and Gaussian noise half and half, 4 patch workers.
# Usage: bash device_command.sh BUDGET CALIBRATE OUTDIR --variant NAME K=V ... [--variant ...]
# SKIP_INSTALL=1 skips the wheels (a dry run on a machine that has the packages).
set -u
BUDGET=$1; CAL=$2; OUTDIR=$3; shift 3
T0=$(date +%s)
if [ -z "${SKIP_INSTALL:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH=$PWD:/tmp/site
fi
export PYTHONUNBUFFERED=1
echo "install: $(( $(date +%s) - T0 )) s"; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null; nproc
python3 -c "import torch, monai, pydantic, pydicom, pywt, pipeline.train; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'monai', monai.__version__)" || exit 4
D=.gpu/data/cxr
N=$D/png/nih_chestxray14
python3 scripts/train_sweep.py configs/cxr_shipped_xray.yaml --budget "$BUDGET" --calibrate "$CAL" --grace "${GRACE:-40}" \
  --set "data.root=[$D/png/hannover_mhh_covid,$D/dicom/pydicom_RG1_J2KI_cr_chest.dcm,$D/dicom/siim_pneumothorax_1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm,$D/dicom/fodicom_CR-MONO1-10-chest.acrnema.dcm]" \
  --set "data.test_root=[$N/00000001_000.png,$N/00000002_000.png,$N/00000013_003.png,$N/00027426_000_512px_torchxrayvision.png,$D/png/opencxr_tests]" \
  --set "data.groups.csv=$D/metadata/hannover_ccd_metadata.csv" \
  --set "run.stages=[train]" --set train.progress=false --set train.amp=false --set run.threads=1 \
  --set train.batch_size=32 --set data.patch_size=256 --set data.patches_per_image=192 --set train.validate_every=5 \
  --set "noise.mixed_kinds=[gaussian,xray]" --set train.workers=4 \
  "$@" --out /tmp/sweep --export "$OUTDIR"
rc=$?
tar czf "$OUTDIR/logs.tgz" -C /tmp/sweep sweep.json logs $(cd /tmp/sweep && find runs -name train_log.csv -o -name config.yaml -o -name environment.json -o -name split.csv) 2>/dev/null
echo "total: $(( $(date +%s) - T0 )) s, rc $rc"
