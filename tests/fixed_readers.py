"""ONNX models whose reading the test chooses: a bright image reads one text, a dark image another.

Real captcha-crnn ONNX files (the metadata `Recognizer.load` checks, log-probabilities out), built with
onnx's helpers in milliseconds, so tests of what is done with a reading (solving it, serving it, swapping
models) know exactly what the model reads without training one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from captcha_crnn.data.images import InputPolicy
from captcha_crnn.inference.backends import ONNX_FORMAT

WIDTH = 64  # every input is resized to 64x32: 16 frames, room for 8 characters


def frames(text: str, charset: str, count: int) -> np.ndarray:
    """(count, classes) log-probabilities whose greedy CTC reading is `text`: each character, then a
    blank (so repeats survive), then blanks to the end."""
    classes = len(charset) + 1
    assert 2 * len(text) <= count, f"{text!r} needs more than {count} frames"
    best = [0] * count
    for i, ch in enumerate(text):
        best[2 * i] = charset.index(ch) + 1
    logits = np.zeros((count, classes), np.float32)
    logits[np.arange(count), best] = 12.0
    return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))


def reader(path: Path, charset: str, bright: str, dark: str = "") -> Path:
    """An ONNX model of `charset` reading `bright` from images brighter than mid-grey, else `dark`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    policy = InputPolicy(height=32, min_width=WIDTH, max_width=WIDTH)
    count = policy.frames(WIDTH)
    consts = [
        numpy_helper.from_array(frames(bright, charset, count)[None], "bright"),
        numpy_helper.from_array(frames(dark, charset, count)[None], "dark"),
        numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape"),
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Reshape", ["mean", "shape"], ["mean3"]),
        helper.make_node("Greater", ["mean3", "half"], ["is_bright"]),
        helper.make_node("Where", ["is_bright", "bright", "dark"], ["log_probs"]),
    ]
    graph = helper.make_graph(
        nodes,
        "fixed-reader",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["b", 1, 32, "w"])],
        [helper.make_tensor_value_info("log_probs", TensorProto.FLOAT, ["b", count, len(charset) + 1])],
        initializer=consts,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    meta = {"format": ONNX_FORMAT, "charset": charset, "input_policy": json.dumps(policy.to_dict())}
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(proto, str(tmp))
    os.replace(tmp, path)  # a new file, never a half-written one: what a reload sees
    return path


def image(path: Path, bright: bool) -> Path:
    """A plain image that `reader` models read as their bright or their dark text."""
    Image.new("L", (WIDTH * 2, 64), 230 if bright else 20).save(path)
    return path
