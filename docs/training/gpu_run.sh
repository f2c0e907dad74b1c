#!/bin/bash
# The script that trained the shipped weights on the GPU machine lent to a development
# session (issue #7), kept for reproducibility. It ran in a copy of this repository with
# ../shared/data/isic2018 copied to .gpudata/isic2018 (same files, same data fingerprint),
# as `DEADLINE=520 bash run.sh`, with $OUT a folder whose files came back.
# It times a 3-epoch probe, then runs the longest full cosine schedule (<= 300 epochs) that
# fits the deadline: 292 epochs at 1.27 s each on an H200.
# DEV=cpu EXTRA="--limit-train 24 --limit-val 8" DEADLINE=60 tries the logic on a CPU.
set -u
START=$(date +%s); DEADLINE=${DEADLINE:-500}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
D=.gpudata/isic2018
LOG=$OUT/train.log
el() { echo $(( $(date +%s) - START )); }
{ nvidia-smi -L; python3 -c "import torch;print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"; } 2>&1 | tee -a $LOG
GRAPHS=""
python3 -m egeunet train --data $D --device ${DEV:-cuda} ${EXTRA:-} --epochs 300 --stop-after-epoch 3 --out /tmp/probe --quiet --seed 42 2>&1 | tail -n 25 | tee -a $LOG
if [ ! -f /tmp/probe/log.csv ] || [ $(wc -l < /tmp/probe/log.csv) -lt 4 ]; then
  echo "PROBE FAILED with graphs; retry eager" | tee -a $LOG; GRAPHS="--no-cuda-graphs"; rm -rf /tmp/probe
  python3 -m egeunet train --data $D --device ${DEV:-cuda} ${EXTRA:-} --epochs 300 --stop-after-epoch 3 --out /tmp/probe --quiet --seed 42 $GRAPHS 2>&1 | tail -n 25 | tee -a $LOG
fi
cp /tmp/probe/log.csv $OUT/probe_log.csv 2>/dev/null
T=$(python3 -c "import csv;r=list(csv.DictReader(open('/tmp/probe/log.csv')));print(max(float(x['seconds']) for x in r[1:]))")
LEFT=$(( DEADLINE - $(el) ))
E=$(python3 -c "print(max(1, min(300, int(($LEFT - 25) / ($T * 1.08 + 0.05)))))")
echo "probe epoch ${T}s at $(el)s; left ${LEFT}s -> epochs $E $GRAPHS" | tee -a $LOG
timeout -s INT $(( DEADLINE - $(el) )) python3 -m egeunet train --data $D --device ${DEV:-cuda} ${EXTRA:-} --epochs $E --out /tmp/run --quiet --seed 42 --plot-every 25 $GRAPHS 2>&1 | tail -n 40 | tee -a $LOG
echo "done at $(el)s" | tee -a $LOG
for f in best.safetensors best.json last.safetensors last.json log.csv curves.png; do cp /tmp/run/$f $OUT/ 2>/dev/null; done
ls -la /tmp/run $OUT
