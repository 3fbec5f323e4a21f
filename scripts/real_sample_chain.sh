#!/usr/bin/env bash
# The whole chain on the real BraTS 2018 subjects in ../shared/data/brats_sample (never committed here):
# prepare -> train CycleGAN and HarmonicGAN-histogram a few steps (cpu_small preset) -> translate one
# whole volume -> evaluate slices and the translated volume. Results: docs/real_sample.md.
#   bash scripts/real_sample_chain.sh [OUT=/tmp/mrtrans_real] [STEPS=100]
set -euo pipefail
SAMPLE="$(cd "$(dirname "$0")/../.." && pwd)/shared/data/brats_sample"
OUT="${1:-/tmp/mrtrans_real}"
STEPS="${2:-100}"
if [ ! -d "$SAMPLE" ]; then echo "skipped: $SAMPLE not found"; exit 0; fi
# Never remove what this script did not make: an existing, non-empty OUT must carry its mark.
MARK="$OUT/.made-by-real_sample_chain"
if [ -d "$OUT" ] && [ -n "$(ls -A "$OUT")" ] && [ ! -f "$MARK" ]; then
  echo "error: $OUT exists and was not made by this script; choose another folder" >&2
  exit 2
fi
if [ -e "$OUT" ] && [ ! -d "$OUT" ]; then echo "error: $OUT is a file; choose a folder" >&2; exit 2; fi
rm -rf "$OUT" && mkdir -p "$OUT" && touch "$MARK"
mrtrans prepare-brats "$SAMPLE" --out "$OUT/prepared" --train-slices 40 --test-slices 20 --workers 2
for method in cyclegan harmonicgan_hist; do
  mrtrans train flair2t1 --data "$OUT/prepared" --out "$OUT/runs/$method" --config "$method" --preset cpu_small --max-steps "$STEPS"
done
TEST_ID=$(python -c "import json,sys; r=json.load(open('$OUT/prepared/prepare.json'))['subjects']['roles']; print(sorted(k for k,v in r.items() if v=='test')[0])")
mrtrans translate "$SAMPLE/$TEST_ID/${TEST_ID}_flair.nii.gz" --model "$OUT/runs/harmonicgan_hist" --out "$OUT/translated/${TEST_ID}_t1_from_flair.nii.gz"
mrtrans evaluate "$OUT/runs/cyclegan" "$OUT/runs/harmonicgan_hist" --data "$OUT/prepared" --out "$OUT/report" --audit-steps 100 --cache-dir "$OUT/cache"
mrtrans evaluate-volumes --pred "$OUT/translated/${TEST_ID}_t1_from_flair.nii.gz" --ref "$SAMPLE/$TEST_ID/${TEST_ID}_t1.nii.gz" \
  --seg "$SAMPLE/$TEST_ID/${TEST_ID}_seg.nii.gz" --name harmonicgan_hist --out "$OUT/volume_report"
echo "report: $OUT/report/report.md, volume report: $OUT/volume_report/report.md"
