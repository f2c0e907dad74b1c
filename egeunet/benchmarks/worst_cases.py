"""Picture of the worst test cases (image, ground truth, prediction) for the model card.

    egeunet-eval --split test --bootstrap 1000 --json eval.json
    python -m egeunet.benchmarks.worst_cases eval.json --out docs/model_card/worst_cases.png

The images are ISIC 2018 (CC BY-NC 4.0); the figure is shown at reduced size with attribution.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("eval_json", help="output of egeunet-eval --bootstrap B --json (it lists per-image scores)")
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--out", default="worst_cases.png")
    p.add_argument("--weights")
    a = p.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from egeunet.data import SegmentationFolder
    from egeunet.runtimes import open_runtime

    res = json.loads(Path(a.eval_json).read_text())
    if "images" not in res:
        raise SystemExit(f"{a.eval_json}: no per-image scores; run egeunet-eval with --bootstrap")
    worst = sorted(res["images"], key=lambda r: r["dice"])[: a.k]
    folder = SegmentationFolder(res["data_root"])
    rt = open_runtime(a.weights)
    fig, axes = plt.subplots(3, len(worst), figsize=(1.6 * len(worst), 5.2))
    for j, r in enumerate(worst):
        img, truth = folder.read_pair(r["id"], rt.pre.size)
        pred = rt.predict(img) >= rt.pre.threshold
        small = np.asarray(Image.fromarray(img).resize((128, 128), Image.BILINEAR))
        for i, (arr, cmap) in enumerate(((small, None), (truth, "gray"), (pred, "gray"))):
            axes[i, j].imshow(arr, cmap=cmap, vmin=0, vmax=1 if cmap else None)
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
        axes[0, j].set_title(f"{r['id'][5:]}\nDice {r['dice']:.2f}", fontsize=7)
    for i, name in enumerate(("image", "truth", "prediction")):
        axes[i, 0].set_ylabel(name, fontsize=8)
    fig.suptitle(f"{len(worst)} worst test images by Dice (ISIC 2018, CC BY-NC 4.0, Codella et al. 2018)", fontsize=8)
    fig.tight_layout()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=90)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
