#!/usr/bin/env python3
"""Draws docs/diagrams/train_step.svg: one training step of redi, from train::Trainer::step down
to the ops, with the layer each piece lives in. Plain Python 3, no packages:

    python3 docs/diagrams/make_train_step_svg.py          # rewrites docs/diagrams/train_step.svg

Boxes are placed on a grid of layer bands (rows) and columns; arrows are the calls (solid) and
the data handed along (dashed). Edit BOXES / ARROWS below and rerun when the code moves.
"""
import html
import os

# Layer bands, top to bottom: (id, title, folder).
BANDS = [
    ("train", "training loop", "redi/train/, redi/data/"),
    ("model", "model type", "redi/redi_model.hpp, redi/train/optimizer.hpp"),
    ("diff", "diffusion policies (host)", "redi/diffusion/"),
    ("nn", "networks over flat buffers", "redi/nn/, redi/core/workspace.hpp"),
    ("ops", "op contract: Backend<Dev>", "redi/ops/backend.hpp"),
    ("dev", "backends (one per device)", "redi/ops/cpu_backend.hpp, redi/cuda/backend.cuh"),
]
BAND_H, TOP, LEFT, COL_W, BOX_H = 118, 46, 250, 218, 66

# Boxes: id -> (band, column (0-based, may be fractional), width in columns, lines of text).
BOXES = {
    "step": ("train", 0, 1, ["Trainer::step", "(train/trainer.hpp)"]),
    "sampler": ("train", 1, 1, ["data::BatchSampler::next", "shuffled, resumable indices"]),
    "gather": ("train", 2, 1, ["data::TrainSet::gather", "x0, z0 (resized), labels, flips"]),
    "log": ("train", 3, 1.3, ["after the step: JSONL log,", "PNG grids, checkpoints"]),
    "backprop": ("model", 0.5, 1, ["ReDi::backprop", "zero_grad, loss fwd + bwd"]),
    "finish": ("model", 3.3, 1.0, ["ReDi::finish_step", "-> train::Optimizer::step", "clip, AdamW, EMA"]),
    "loss": ("diff", 0, 1.25, ["JointLoss", "Philox noise, t, dropout;", "x_t, targets, loss, dout"]),
    "bridge": ("diff", 1.4, 1.1, ["DeviceBridge", "(device models only):", "host <-> device staging"]),
    "fwd": ("nn", 0, 1, ["Transformer::forward", "embed, blocks, final layer"]),
    "block": ("nn", 1.1, 1, ["block_forward / _backward", "adaLN-Zero DiT block"]),
    "bwd": ("nn", 2.2, 1, ["Transformer::backward", "grads += (flat buffer)"]),
    "mem": ("nn", 3.45, 0.85, ["Workspace: activations", "ParamLayout: params"]),
    "contract": ("ops", 0.6, 2.9, ["Backend<Dev>::linear_forward(ctx, ...), layernorm_*, attention_*, copy_strided, adamw_step, ...",
                                   "the OpsBackend concept lists the contract (docs/ops.md)"]),
    "cpu": ("dev", 0.3, 1.4, ["Backend<Cpu>", "ops/*.hpp: OpenBLAS / Eigen, OpenMP"]),
    "cuda": ("dev", 1.9, 1.4, ["Backend<Cuda>", "cuda/ops/*.cuh: cuBLASLt, cuDNN, kernels"]),
    "test": ("dev", 3.5, 0.8, ["Backend<test device>", "(test_device_path)"]),
}

# Arrows: (from, to, label, dashed).
ARROWS = [
    ("step", "sampler", "", False),
    ("sampler", "gather", "", True),
    ("step", "backprop", "batch", False),
    ("step", "finish", "", False),
    ("backprop", "loss", "", False),
    ("loss", "fwd", "x_t, t, labels", True),
    ("loss", "bwd", "dout", True),
    ("loss", "bridge", "", False),
    ("fwd", "block", "", False),
    ("bwd", "block", "", False),
    ("block", "contract", "", False),
    ("fwd", "contract", "", False),
    ("bwd", "contract", "", False),
    ("finish", "contract", "", False),
    ("contract", "cpu", "", False),
    ("contract", "cuda", "", False),
    ("contract", "test", "", False),
]

FILL = {"train": "#e8f1fb", "model": "#eaf6ea", "diff": "#fdf3e1", "nn": "#f3ecfa", "ops": "#fbe9e9",
        "dev": "#eeeeee"}


def band_index(b):
    return [x[0] for x in BANDS].index(b)


def box_rect(bid):
    band, col, wcols, _ = BOXES[bid]
    x = LEFT + col * COL_W + 8
    y = TOP + band_index(band) * BAND_H + (BAND_H - BOX_H) / 2
    return x, y, wcols * COL_W - 16, BOX_H


def anchor(bid, towards):
    x, y, w, h = box_rect(bid)
    tx, ty, tw, th = box_rect(towards)
    cx, cy, tcx, tcy = x + w / 2, y + h / 2, tx + tw / 2, ty + th / 2
    if abs(ty - y) < 1:  # same band: leave from the side
        return (x + w, cy) if tcx > cx else (x, cy)
    return (min(max(tcx, x + 12), x + w - 12), y + h) if tcy > cy else (min(max(tcx, x + 12), x + w - 12), y)


def svg():
    width = LEFT + 4.3 * COL_W + 20
    height = TOP + len(BANDS) * BAND_H + 20
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
           'font-family="DejaVu Sans, Helvetica, Arial, sans-serif">' % (width, height, width, height),
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#444"/></marker></defs>',
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="28" font-size="18" font-weight="bold">One training step in redi: '
           'Trainer::step down to the ops</text>' % 12]
    for i, (bid, title, folder) in enumerate(BANDS):
        y = TOP + i * BAND_H
        out.append('<rect x="4" y="%d" width="%d" height="%d" fill="%s" stroke="#bbb"/>'
                   % (y, width - 8, BAND_H - 4, FILL[bid]))
        out.append('<text x="12" y="%d" font-size="14" font-weight="bold">%s</text>' % (y + 24, html.escape(title)))
        for k, part in enumerate(folder.split(", ")):
            out.append('<text x="12" y="%d" font-size="11" fill="#555">%s</text>' % (y + 44 + 15 * k, html.escape(part)))
    for frm, to, label, dashed in ARROWS:
        x1, y1 = anchor(frm, to)
        x2, y2 = anchor(to, frm)
        dash = ' stroke-dasharray="5,4"' if dashed else ''
        out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#444" stroke-width="1.4"%s '
                   'marker-end="url(#arrow)"/>' % (x1, y1, x2, y2, dash))
        if label:
            out.append('<text x="%.1f" y="%.1f" font-size="11" fill="#333" text-anchor="middle">%s</text>'
                       % ((x1 + x2) / 2 + 6, (y1 + y2) / 2 - 4, html.escape(label)))
    for bid, (band, _, _, lines) in BOXES.items():
        x, y, w, h = box_rect(bid)
        out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" rx="6" fill="white" stroke="#333"/>'
                   % (x, y, w, h))
        y0 = y + h / 2 - (len(lines) - 1) * 8 + 4
        for k, line in enumerate(lines):
            weight = ' font-weight="bold"' if k == 0 else ''
            out.append('<text x="%.1f" y="%.1f" font-size="12" text-anchor="middle"%s>%s</text>'
                       % (x + w / 2, y0 + 16 * k, weight, html.escape(line)))
    out.append('</svg>')
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train_step.svg")
    with open(path, "w") as f:
        f.write(svg())
    print("wrote", path)
