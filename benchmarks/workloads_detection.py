"""Detection workloads (course 4, week 3): the IoU matrix and non-max
suppression, corenn against the vectorised NumPy formula, PyTorch written the
same way, and ONNX Runtime's NonMaxSuppression operator.

Boxes are random corners in a 1000 × 1000 image, 10–100 pixels a side, so
that NMS keeps a realistic fraction of them (about a third at IoU 0.5).
"""

import os

import numpy as np

IOU_N = 2000          # iou: (2000, 4) × (2000, 4) -> (2000, 2000)
NMS_N = 10_000        # nms: 10,000 boxes, IoU threshold 0.5
NMS_IOU = 0.5


def boxes(n, seed):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 1000, (n, 2))
    wh = rng.uniform(10, 100, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)


def _iou_data():
    return boxes(IOU_N, 0), boxes(IOU_N, 1)


def _nms_data():
    return boxes(NMS_N, 2), np.random.default_rng(3).random(NMS_N, dtype=np.float32)


def iou_flops():
    """Per pair: 4 min/max, 2 side subtractions, 2 clamps, 1 product, an add,
    a subtract, a divide: about 13 operations (areas precomputed)."""
    return 13 * IOU_N * IOU_N


def iou_bytes():
    return IOU_N * IOU_N * 4  # the (N, M) float32 output dominates


def numpy_iou_formula(a, b):
    """The vectorised NumPy formula (broadcast (N, 1) against (1, M))."""
    area_a = np.maximum(a[:, 2] - a[:, 0], 0) * np.maximum(a[:, 3] - a[:, 1], 0)
    area_b = np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0)


def corenn_iou():
    import corenn as cn
    a, b = _iou_data()
    return lambda: cn.detection.iou(a, b)


def numpy_iou():
    a, b = _iou_data()
    return lambda: numpy_iou_formula(a, b)


def torch_iou():
    import torch
    a, b = (torch.from_numpy(t) for t in _iou_data())

    def step():
        area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
        area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
        lt = torch.max(a[:, None, :2], b[None, :, :2])
        rb = torch.min(a[:, None, 2:], b[None, :, 2:])
        wh = (rb - lt).clamp(min=0)
        inter = wh[..., 0] * wh[..., 1]
        return inter / (area_a[:, None] + area_b[None, :] - inter)
    return step


def corenn_nms():
    import corenn as cn
    b, s = _nms_data()
    return lambda: cn.detection.nms(b, s, NMS_IOU)


def numpy_nms():
    """Greedy NMS in NumPy: sort once, then each kept box suppresses the rest
    with one vectorised IoU row (the usual NumPy implementation)."""
    b, s = _nms_data()

    def step():
        order = np.argsort(-s, kind="stable")
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        keep = []
        while order.size:
            i, rest = order[0], order[1:]
            keep.append(i)
            w = np.clip(np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0]), 0, None)
            h = np.clip(np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1]), 0, None)
            inter = w * h
            order = rest[inter / (area[i] + area[rest] - inter) <= NMS_IOU]
        return np.array(keep)
    return step


def onnxruntime_nms():
    """ONNX NonMaxSuppression (opset 17, center_point_box=0) in a one-node
    model; boxes given as ONNX's [y1, x1, y2, x2]; intra-op threads = the
    worker's thread count."""
    import onnx
    import onnxruntime as ort
    h = onnx.helper
    f32, i64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64
    node = h.make_node("NonMaxSuppression", ["boxes", "scores", "max", "iou"], ["selected"],
                       center_point_box=0)
    graph = h.make_graph([node], "nms", [
        h.make_tensor_value_info("boxes", f32, [1, NMS_N, 4]),
        h.make_tensor_value_info("scores", f32, [1, 1, NMS_N]),
        h.make_tensor_value_info("max", i64, [1]),
        h.make_tensor_value_info("iou", f32, [1])], [h.make_tensor_value_info("selected", i64, [None, 3])])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    b, s = _nms_data()
    feeds = {"boxes": np.ascontiguousarray(b[:, [1, 0, 3, 2]])[None], "scores": s[None, None],
             "max": np.array([NMS_N], np.int64), "iou": np.array([NMS_IOU], np.float32)}
    return lambda: session.run(None, feeds)[0][:, 2]
