#!/bin/bash
# What the lent GPU ran: install the carried wheels, then scripts/train_sweep.py on
# configs/cxr_shipped_refine.yaml with the training radiographs copied to .gpu/data.
# Usage: GRACE=S bash device_command.sh BUDGET CALIBRATE OUTDIR [--set K=V ...] --variant NAME K=V ... [--variant ...]
# (The device ran this script twice, as .gpu/run.sh and .gpu/run2.sh, with the variant
# arguments of README.md written into it.)
set -u
BUDGET=$1; CAL=$2; OUTDIR=$3; shift 3
T0=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
echo "install: $(( $(date +%s) - T0 )) s"; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
python3 -c "import torch, monai, pydantic, pydicom; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'monai', monai.__version__)"
D=.gpu/data/cxr
python3 scripts/train_sweep.py configs/cxr_shipped_refine.yaml --budget "$BUDGET" --calibrate "$CAL" --grace "${GRACE:-45}" \
  --set "data.root=[$D/png/hannover_mhh_covid,$D/dicom/pydicom_RG1_J2KI_cr_chest.dcm,$D/dicom/siim_pneumothorax_1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm,$D/dicom/fodicom_CR-MONO1-10-chest.acrnema.dcm]" \
  --set data.test_root=null --set "run.stages=[train]" --set train.progress=false --set train.amp=false \
  --set run.threads=1 --set train.batch_size=32 --set data.patches_per_image=384 \
  "$@" --out /tmp/sweep --export "$OUTDIR"
rc=$?
tar czf "$OUTDIR/logs.tgz" -C /tmp/sweep sweep.json logs $(cd /tmp/sweep && find runs -name train_log.csv -o -name config.yaml -o -name environment.json) 2>/dev/null
echo "total: $(( $(date +%s) - T0 )) s, rc $rc"
