import numpy as np, torch, torch.nn.functional as F, sys
from egeunet.data import SegmentationFolder
from egeunet.model.checkpoint import load_checkpoint
from egeunet.export.tf_graph import TFEGEUNet
from egeunet.evaluate import images_to_tensor
from egeunet.model.egeunet import _up2
model, pre, _ = load_checkpoint(); model.eval()
g = TFEGEUNet(model, pre); tf = g.tf
imgs = SegmentationFolder(sys.argv[1]).load_split("test", 256, limit=int(sys.argv[2])).images
m = model
worst = {}
def cmp(name, t_torch, t_tf):
    a = t_torch.detach().numpy().transpose(0, 2, 3, 1); b = t_tf.numpy()
    d = float(np.abs(a - b).max()); s = float(np.abs(a).max())
    worst[name] = max(worst.get(name, (0, 0)), (d, s))
with torch.no_grad():
    for img in imgs:
        x = images_to_tensor(torch.from_numpy(img[None]), pre)
        px = img.astype(np.float32)[None]
        tx = tf.constant((px - g.mean) * g.inv_std)
        cmp("input", x, tx)
        skips, tskips, out, tout = [], [], x, tx
        for i in range(5):
            z = m.encoder[i](out); tz = g.stage(tout, m.encoder[i]); cmp(f"enc{i} block", z, tz)
            n = m.encoder_norms[i](z); tn = g.group_norm(tz, m.encoder_norms[i]); cmp(f"enc{i} norm", n, tn)
            out = F.gelu(F.max_pool2d(n, 2, 2)); tout = g.gelu(tf.nn.max_pool2d(tn, 2, 2, "VALID")); cmp(f"enc{i} out", out, tout)
            skips.append(out); tskips.append(tout)
        deep = F.gelu(m.encoder[5](out)); tdeep = g.gelu(g.stage(tout, m.encoder[5])); cmp("enc5", deep, tdeep)
        out, tout = deep, tdeep
        for i in range(5):
            o = m.decoder[i](out); to = g.stage(tout, m.decoder[i]); cmp(f"dec{i} block", o, to)
            o = m.decoder_norms[i](o); to = g.group_norm(to, m.decoder_norms[i]); cmp(f"dec{i} norm", o, to)
            out = F.gelu(o if i == 0 else _up2(o)); tout = g.gelu(to if i == 0 else g.resize(to, 2 * int(to.shape[1]))); cmp(f"dec{i} up", out, tout)
            aux = m.aux_heads[i](out); taux = g.conv(tout, m.aux_heads[i]); cmp(f"dec{i} aux", aux, taux)
            skip = m.bridges[i](deep, skips[4 - i], aux); tskip = g.gab(tdeep, tskips[4 - i], taux, m.bridges[i]); cmp(f"gab{i}", skip, tskip)
            deep, tdeep = skip, tskip
            out = out + skip; tout = tout + tskip
        cmp("head", _up2(m.head(out)), g.resize(g.conv(tout, m.head), 256))
for k, (d, s) in worst.items(): print(f"{k:12s} max|d| {d:.2e}  max|x| {s:.2e}")
