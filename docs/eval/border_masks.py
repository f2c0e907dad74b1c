"""How many masks touch the image border (lesions cut by the centre crop, or by the original
photo's edge), per split.  Usage: python docs/eval/border_masks.py [DATA_DIR]"""
import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image

root = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/isic2018")
touching: dict[str, list[bool]] = {}
for row in csv.DictReader(open(root / "splits.csv")):
    m = np.array(Image.open(root / "masks" / f"{row['id']}.png")) > 127
    touching.setdefault(row["split"], []).append(bool(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any()))
for split, flags in touching.items():
    print(f"{split}: {sum(flags)} of {len(flags)} masks touch the border ({100 * sum(flags) / len(flags):.1f} %)")
