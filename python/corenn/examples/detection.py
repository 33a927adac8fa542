"""python -m corenn.examples.detection: a small YOLO-style detector (course 4,
week 3) on scikit-learn's handwritten digits pasted onto larger canvases.

The data is made here from a seed, nothing downloads: each 48 × 48 canvas holds
one to four 8 × 8 digits, each upscaled 1.5× to 3× (bilinear) and pasted at a
random position where it overlaps no earlier digit by more than IoU 0.1. A
digit's box is the tight box of its ink (pixels ≥ 0.15 after upscaling), its
class the digit. The digit IMAGES are split into training and held-out sets
first, so every held-out canvas is made of digits the network never saw.

The detector is a small CNN (convolution, batch normalisation, ReLU, max
pooling; 28k parameters) whose last 1×1 convolution gives the YOLO volume
``(N, A·(5+C), S, S)`` (cn.detection's layout): a 6 × 6 grid of 8-pixel cells,
C = 10 classes and A = 3 anchors chosen from the training boxes by k-means on
their widths and heights with 1 − IoU as the distance (YOLOv2's "dimension
clusters"). It is trained with cn.losses.YoloLoss. Decoding is the course's:
yolo_decode for the boxes, yolo_filter_boxes on p_c · class probability,
batched_nms per class; the held-out mAP@0.5 is cn.detection's
mean_average_precision (PASCAL VOC all-point).

    python -m corenn.examples.detection            # the full run
    python -m corenn.examples.detection --fast     # the tests' run
    ... --png detection.png    # also draw held-out canvases with their detections (needs matplotlib)

docs/guide.md shows the printout of
`python -m corenn.examples.detection --threads 1 --png docs/images/detection.png`.
"""

import numpy as np

import corenn as cn
from corenn.examples import _cli

L = cn.layers
D = cn.detection

CANVAS, GRID, CLASSES, ANCHORS = 48, 6, 10, 3
INK = 0.15                 # a pixel belongs to the digit's box at this intensity (max 1)
FAST = dict(train_canvases=1500, test_canvases=200, epochs=12)  # the tests' run, seconds


# Data --------------------------------------------------------------------------


def paste_digits(digits, labels, count, rng, canvas=CANVAS, scales=(1.5, 3.0), per_canvas=(1, 4),
                 max_overlap=0.1):
    """``count`` canvases ``(count, 1, canvas, canvas)`` float32 in [0, 1] with
    digits from ``digits`` ``(K, 8, 8)`` (values in [0, 1]) pasted on them, and
    per canvas the boxes ``(G, 4)`` (corners, pixels) and classes ``(G,)``.
    Overlapping digits are combined with max, as ink on paper."""
    from scipy.ndimage import zoom

    images = np.zeros((count, 1, canvas, canvas), np.float32)
    boxes, classes = [], []
    for n in range(count):
        placed, kinds = [], []
        for _ in range(rng.integers(per_canvas[0], per_canvas[1] + 1)):
            k = rng.integers(len(digits))
            patch = np.clip(zoom(digits[k], rng.uniform(*scales), order=1), 0, 1)
            rows, cols = np.nonzero(patch >= INK)
            patch = patch[rows.min():rows.max() + 1, cols.min():cols.max() + 1]  # the ink only
            h, w = patch.shape
            for _attempt in range(20):   # a free spot, or this digit is left out
                y, x = rng.integers(0, canvas - h + 1), rng.integers(0, canvas - w + 1)
                box = np.array([x, y, x + w, y + h], np.float64)
                if not placed or D.iou(box[None], np.array(placed)).max() <= max_overlap:
                    break
            else:
                continue
            images[n, 0, y:y + h, x:x + w] = np.maximum(images[n, 0, y:y + h, x:x + w], patch)
            placed.append(box)
            kinds.append(labels[k])
        boxes.append(np.array(placed).reshape(-1, 4))
        classes.append(np.array(kinds, np.int64))
    return images, boxes, classes


def anchor_clusters(boxes, k, rng, iterations=50):
    """k anchors (width, height) ``(k, 2)``, sorted by area, from boxes ``(G, 4)``:
    k-means on the box sizes with distance 1 − IoU of the sizes (both centred;
    YOLOv2, section "Dimension Clusters"), each centre the median of its
    members."""
    wh = boxes[:, 2:] - boxes[:, :2]
    centres = wh[rng.choice(len(wh), k, replace=False)]
    for _ in range(iterations):
        inter = np.minimum(wh[:, None], centres[None]).prod(axis=2)
        shape_iou = inter / (wh.prod(axis=1)[:, None] + centres.prod(axis=1)[None] - inter)
        nearest = np.argmax(shape_iou, axis=1)
        centres = np.array([np.median(wh[nearest == j], axis=0) if (nearest == j).any() else centres[j]
                            for j in range(k)])
    return centres[np.argsort(centres.prod(axis=1))]


# Model -------------------------------------------------------------------------


def build(anchors, learning_rate=5e-3):
    """Three stages of 3×3 convolution, batch normalisation, ReLU and 2×2 max
    pooling (48 → 6; 8, 16, 32 channels), one more 3×3 convolution on the grid
    (64 channels; receptive field 38 pixels, so a cell sees the whole of a
    24-pixel digit centred in it) and the 1×1 head with A·(5+C) channels."""
    depth = len(anchors) * (5 + CLASSES)
    layers = [L.Input((1, CANVAS, CANVAS))]
    for filters in (8, 16, 32, 64):
        layers += [L.Conv2D(filters, 3, padding="same", use_bias=False), L.BatchNormalization(),
                   L.Activation("relu")]
        if filters < 64:
            layers.append(L.MaxPooling2D(2))
    layers.append(L.Conv2D(depth, 1, name="yolo_head"))
    model = cn.Sequential(layers, name="digit_detector")
    model.compile(cn.optimizers.Adam(learning_rate),
                  loss=cn.losses.YoloLoss(anchors, CLASSES, image_size=CANVAS))
    return model


def detect(raw, anchors, threshold=0.05, iou_threshold=0.5):
    """Per image (boxes (K, 4), scores (K,), classes (K,)) from raw head outputs
    ``(N, A·(5+C), S, S)``: yolo_decode's boxes, yolo_filter_boxes on
    σ(p_c) · softmax(classes) ≥ threshold, then batched_nms."""
    n, a = len(raw), len(anchors)
    boxes, _, _ = D.yolo_decode(raw, anchors, CANVAS, from_logits=True)   # (N, S·S·A, 4)
    # The filter's inputs in decode's order (row, column, anchor): p_c and class probabilities.
    v = raw.reshape(n, a, 5 + CLASSES, GRID, GRID).transpose(0, 3, 4, 1, 2).reshape(n, -1, 5 + CLASSES)
    confidence = 1 / (1 + np.exp(-v[..., 0]))
    logits = v[..., 5:] - v[..., 5:].max(axis=-1, keepdims=True)
    probs = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    found = []
    for i in range(n):
        scores, kept, classes = D.yolo_filter_boxes(boxes[i], confidence[i], probs[i], threshold)
        keep = D.batched_nms(kept, scores, classes, iou_threshold)
        found.append((kept[keep], scores[keep], classes[keep]))
    return found


def held_out_map(model, anchors, images, boxes, classes):
    found = detect(model.predict(images), anchors)
    return D.mean_average_precision([f[0] for f in found], [f[1] for f in found], [f[2] for f in found],
                                    boxes, classes, iou_threshold=0.5)


def plot(path, images, found, boxes, threshold=0.5):
    """A grid of canvases with their detections (score ≥ threshold) in red,
    labelled with class and score, and the true boxes dashed in green."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, axes = plt.subplots(2, 4, figsize=(8, 4.3))
    for ax, image, (pred, scores, labels), truth in zip(axes.flat, images, found, boxes):
        ax.imshow(image[0], cmap="gray_r", vmin=0, vmax=1)
        for x1, y1, x2, y2 in truth:
            ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False,
                                   edgecolor="tab:green", linestyle="--", linewidth=1))
        for (x1, y1, x2, y2), s, c in zip(pred, scores, labels):
            if s >= threshold:
                ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False,
                                       edgecolor="tab:red", linewidth=1.2))
                ax.text(x1, y1 - 1, f"{c} {s:.2f}", color="tab:red", fontsize=7)
        ax.set_xlim(-0.5, CANVAS - 0.5)
        ax.set_ylim(CANVAS - 0.5, -6)
        ax.axis("off")
    fig.suptitle("held-out canvases: detections (red, class and score), true boxes (green, dashed)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def run(train_canvases=4000, test_canvases=500, epochs=20, batch_size=32, seed=0, png=None, out=print):
    from sklearn.datasets import load_digits

    cn.seed(seed)
    rng = np.random.default_rng(seed)
    digits = load_digits()
    images, labels = digits.images / 16.0, digits.target
    (train_digits, train_labels), _, (test_digits, test_labels) = cn.data.train_dev_test_split(
        images, labels, (0.7, 0.0, 0.3), stratify=True, seed=seed)
    X, boxes, classes = paste_digits(train_digits, train_labels, train_canvases, rng)
    X_test, boxes_test, classes_test = paste_digits(test_digits, test_labels, test_canvases, rng)
    all_boxes = np.concatenate(boxes)
    anchors = anchor_clusters(all_boxes, ANCHORS, rng)
    out(f"canvases {CANVAS}x{CANVAS}: {train_canvases} train ({len(all_boxes)} digits) / "
        f"{test_canvases} held out ({sum(len(b) for b in boxes_test)} digits, unseen images)")
    out("anchors (w, h) from k-means on the training boxes: "
        + ", ".join(f"({w:.1f}, {h:.1f})" for w, h in anchors))
    targets = np.stack([D.yolo_encode(b, c, GRID, anchors, CLASSES, CANVAS) for b, c in zip(boxes, classes)])

    model = build(anchors)
    untrained = held_out_map(model, anchors, X_test, boxes_test, classes_test)
    history = model.fit(X, targets, batch_size=batch_size, epochs=epochs, verbose=0)
    result = held_out_map(model, anchors, X_test, boxes_test, classes_test)
    out(f"{model.count_params()} parameters; YOLO loss {history.history['loss'][0]:.3f} -> "
        f"{history.history['loss'][-1]:.3f} after {epochs} epochs")
    out(f"held-out mAP@0.5: {result:.3f} (untrained: {untrained:.3f})")
    if png:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            out(f"matplotlib is not installed (pip install 'corenn[plot]'): {png} not written")
        else:
            plot(png, X_test[:8], detect(model.predict(X_test[:8]), anchors), boxes_test[:8])
            out(f"wrote {png}")
    return {"map": result, "untrained_map": untrained, "anchors": anchors, "model": model,
            "history": history.history}


def main(argv=None):
    parser = _cli.parser(__doc__, "fewer canvases and epochs (tests)")
    parser.add_argument("--png", metavar="PATH",
                        help="draw held-out canvases with their detections into this PNG "
                             "(needs matplotlib; default: none)")
    parser.add_argument("--seed", type=int, default=0)
    args = _cli.parse(parser, argv)
    return run(**(FAST if args.fast else {}), seed=args.seed, png=args.png)


if __name__ == "__main__":
    main()
