#!/usr/bin/env bash
# Copy an egeunet-export .tflite and its manifest.json into the app's assets.
#   android_demo/copy_model.sh [EXPORT_DIR]     (default: exports/tflite-int8 of this repository)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export_dir="${1:-$here/../exports/tflite-int8}"
assets="$here/app/src/main/assets"
manifest="$export_dir/manifest.json"
[ -f "$manifest" ] || { echo "no $manifest: run \`egeunet-export --target tflite --int8\` first" >&2; exit 1; }
# One read of the manifest; a broken one is one line naming the problem, not a Python traceback.
# "file" must be a plain file name: the app opens it by name in assets/, where only its basename lands.
fields="$(python3 - "$manifest" <<'PY'
import json, sys
try:
    m = json.load(open(sys.argv[1], encoding="utf-8"))
except (OSError, UnicodeDecodeError, ValueError) as e:
    sys.exit(f"{sys.argv[1]} is not a readable manifest.json ({e.__class__.__name__}: {e})")
if not isinstance(m, dict):
    sys.exit(f"{sys.argv[1]} is not an egeunet-export manifest (a JSON {type(m).__name__}, not an object)")
missing = [k for k in ("file", "sha256") if not isinstance(m.get(k), str) or not m[k]]
if missing:
    sys.exit(f"{sys.argv[1]} is not an egeunet-export manifest: no {' or '.join(missing)}")
if "/" in m["file"] or "\\" in m["file"] or m["file"] in (".", ".."):
    sys.exit(f"{sys.argv[1]} names {m['file']!r}: expected a plain file name beside the manifest")
print(m.get("target", "?"), m["file"], m["sha256"], sep="\n")
PY
)" || exit 1
{ read -r target; read -r model; read -r want; } <<<"$fields"
# The app runs .tflite files only: an ONNX or Core ML export would replace the bundled model with one it cannot load.
[ "$target" = tflite ] && [ "${model%.tflite}" != "$model" ] || {
    echo "$export_dir holds a $target export ($model), not a .tflite:" \
         "give an \`egeunet-export --target tflite\` folder" >&2; exit 1; }
[ -f "$export_dir/$model" ] || { echo "$manifest names $model, which is not in $export_dir" >&2; exit 1; }
have="$(sha256sum "$export_dir/$model" | cut -d' ' -f1)"
[ "$want" = "$have" ] || { echo "$model does not match the sha256 in its manifest: re-export" >&2; exit 1; }
mkdir -p "$assets"
rm -f "$assets"/*.tflite "$assets/manifest.json"
cp "$export_dir/$model" "$manifest" "$assets/"
echo "copied $model ($(stat -c %s "$assets/$model") bytes, sha256 ok) and manifest.json to $assets"
