#!/usr/bin/env bash
# Copy an egeunet-export .tflite and its manifest.json into the app's assets.
#   android_demo/copy_model.sh [EXPORT_DIR]     (default: exports/tflite-int8 of this repository)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export_dir="${1:-$here/../exports/tflite-int8}"
assets="$here/app/src/main/assets"
manifest="$export_dir/manifest.json"
[ -f "$manifest" ] || { echo "no $manifest: run \`egeunet-export --target tflite --int8\` first" >&2; exit 1; }
target="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("target", "?"))' "$manifest")"
model="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["file"])' "$manifest")"
# The app runs .tflite files only: an ONNX or Core ML export would replace the bundled model with one it cannot load.
[ "$target" = tflite ] && [ "${model%.tflite}" != "$model" ] || {
    echo "$export_dir holds a $target export ($model), not a .tflite:" \
         "give an \`egeunet-export --target tflite\` folder" >&2; exit 1; }
[ -f "$export_dir/$model" ] || { echo "$manifest names $model, which is not in $export_dir" >&2; exit 1; }
want="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sha256"])' "$manifest")"
have="$(sha256sum "$export_dir/$model" | cut -d' ' -f1)"
[ "$want" = "$have" ] || { echo "$model does not match the sha256 in its manifest: re-export" >&2; exit 1; }
mkdir -p "$assets"
rm -f "$assets"/*.tflite "$assets/manifest.json"
cp "$export_dir/$model" "$manifest" "$assets/"
echo "copied $model ($(stat -c %s "$assets/$model") bytes, sha256 ok) and manifest.json to $assets"
