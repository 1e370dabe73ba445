"""ONNX export: parity with PyTorch, metadata, torch-free inference, quantisation, refusals."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from isolated import run_without

from captcha_crnn import Recognizer
from captcha_crnn.cli.main import main
from captcha_crnn.data.images import InputPolicy
from captcha_crnn.export.onnx import RESIZE, TOLERANCE


@pytest.fixture(scope="module")
def onnx_model(trained_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    assert main(["export", str(trained_run / "model.pt"), str(out)]) == 0
    return out


def test_onnx_and_pytorch_agree(onnx_model, trained_run, captcha_dir):
    torch_rec, onnx_rec = Recognizer.load(trained_run / "model.pt"), Recognizer.load(onnx_model)
    paths = sorted(captcha_dir.glob("*.png"))
    assert [p.text for p in onnx_rec.predict(paths)] == [p.text for p in torch_rec.predict(paths)]
    pixels = [torch_rec.preprocess(p) for p in paths]
    a, b = torch_rec.log_probs(pixels), onnx_rec.log_probs(pixels)
    # TOLERANCE bounds probabilities, as export's own check does: the log-probability of a class with
    # almost no probability can differ by more in float32, and changes no reading or confidence
    assert max(float(np.abs(np.exp(x) - np.exp(y)).max()) for x, y in zip(a, b)) < TOLERANCE


def test_onnx_file_carries_everything(onnx_model, trained_run):
    proto = onnx.load(str(onnx_model))
    onnx.checker.check_model(proto)
    meta = {p.key: p.value for p in proto.metadata_props}
    run = json.loads((trained_run / "run.json").read_text())
    assert meta["charset"] == run["charset"]
    assert json.loads(meta["input_policy"]) == run["input_policy"]
    assert meta["version"] and "[0, 1]" in meta["normalisation"]
    assert meta["resize"] == RESIZE
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert not dims[0].HasField("dim_value") and not dims[3].HasField("dim_value")  # dynamic batch, width


def test_the_resize_rule_in_the_metadata_is_the_one_the_code_uses():
    """RESIZE tells readers in other languages how wide to make an image; it must follow width_for."""
    policy = InputPolicy(height=32, min_width=40, max_width=400, width_stride=4, stretch=1.69)
    rng = np.random.default_rng(0)
    for w, h in rng.integers(10, 600, (200, 2)):
        written = round(w * policy.height / h * policy.stretch / policy.width_stride) * policy.width_stride
        assert policy.width_for((int(w), int(h))) == min(max(written, 40), 400), (w, h)


def test_predicting_from_onnx_never_imports_torch(onnx_model, captcha_dir):
    code = (
        "from captcha_crnn.cli.main import main; "
        f"assert main(['predict', {str(onnx_model)!r}, {str(captcha_dir)!r}]) == 0; "
        f"assert main(['evaluate', {str(onnx_model)!r}, {str(captcha_dir)!r}, '--json']) == 0"
    )
    assert len(run_without(code).strip().splitlines()) == 48 + 1


def test_evaluate_onnx_equals_pytorch(onnx_model, trained_run, captcha_dir, capsys):
    results = []
    for model in (trained_run / "model.pt", onnx_model):
        assert main(["evaluate", str(model), str(captcha_dir), "--json"]) == 0
        results.append(json.loads(capsys.readouterr().out))
    assert results[0]["sequence_accuracy"] == results[1]["sequence_accuracy"]
    assert results[0]["cer"] == results[1]["cer"]
    assert results[0]["loss"] == pytest.approx(results[1]["loss"], rel=1e-3)


def test_quantized_export(trained_run, tmp_path, captcha_dir, capsys):
    out = tmp_path / "int8.onnx"
    assert main(["export", str(trained_run / "model.pt"), str(out), "--quantize"]) == 0
    assert "same text" in capsys.readouterr().out
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["quantized"] == "int8"
    preds = Recognizer.load(out).predict(sorted(captcha_dir.glob("*.png"))[:4])
    assert len(preds) == 4 and all(0 <= p.confidence <= 1 for p in preds)


def test_export_refuses_to_overwrite_and_bad_names(onnx_model, trained_run, tmp_path, capsys):
    before = onnx_model.read_bytes()
    assert main(["export", str(trained_run / "model.pt"), str(onnx_model)]) == 2
    assert "--force" in capsys.readouterr().err
    assert onnx_model.read_bytes() == before
    assert main(["export", str(trained_run / "model.pt"), str(tmp_path / "model.bin")]) == 2
    assert ".onnx" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"garbage bytes", None])
def test_onnx_file_that_is_not_ours(tmp_path, captcha_dir, capsys, content):
    path = tmp_path / "other.onnx"
    if content is None:  # a valid ONNX model without captcha-crnn metadata
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            [helper.make_node("Identity", ["x"], ["y"])],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        )
        onnx.save(helper.make_model(graph), str(path))
    else:
        path.write_bytes(content)
    assert main(["predict", str(path), str(captcha_dir)]) == 2
    err = capsys.readouterr().err
    assert "other.onnx" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_serving_an_onnx_model(onnx_model, captcha_dir):
    from fastapi.testclient import TestClient

    from captcha_crnn.serving.app import create_app

    image = sorted(captcha_dir.glob("*.png"))[0]
    rec = Recognizer.load(onnx_model)
    with TestClient(create_app(rec, str(onnx_model))) as client:
        body = client.post("/v1/recognize", content=image.read_bytes()).json()
    assert body["text"] == rec.predict(image).text


def test_missing_extra_is_one_clear_line(captcha_dir, tmp_path):
    code = (
        "import sys; sys.modules['matplotlib'] = None; from captcha_crnn.cli.main import main; "
        f"sys.exit(main(['preview', {str(captcha_dir)!r}, '--out', {str(tmp_path / 'p.png')!r}]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: 'captcha-crnn preview' needs matplotlib, from the [plots] extra: pip install 'captcha-crnn[plots]'"
    )


def test_export_into_a_missing_folder_is_one_line(trained_run, tmp_path, capsys):
    code = main(["export", str(trained_run / "model.pt"), str(tmp_path / "nodir" / "m.onnx")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: {tmp_path / 'nodir'}: no such folder"), err
    (tmp_path / "afile").write_text("x")
    assert main(["export", str(trained_run / "model.pt"), str(tmp_path / "afile" / "m.onnx")]) == 2
    assert "afile: not a folder" in capsys.readouterr().err
    (tmp_path / "dir.onnx").mkdir()
    assert main(["export", str(trained_run / "model.pt"), str(tmp_path / "dir.onnx"), "--force"]) == 2
    assert "dir.onnx: is a folder" in capsys.readouterr().err
    assert not (tmp_path / "nodir").exists()


def test_export_whose_check_cannot_load_the_model_is_one_line(trained_run, tmp_path, capsys, monkeypatch):
    from captcha_crnn.errors import ModelFileError
    from captcha_crnn.export import onnx as exporter

    def old_runtime(path):
        raise ModelFileError(f"{path}: not a loadable ONNX model (NOT_IMPLEMENTED : ConvInteger(10))")

    monkeypatch.setattr(exporter, "load_onnx", old_runtime)
    out = tmp_path / "int8.onnx"
    assert main(["export", str(trained_run / "model.pt"), str(out), "--quantize"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: export check failed: onnxruntime ") and len(err.strip().splitlines()) == 1
    assert "ConvInteger" in err and "tmp" not in err.replace(str(tmp_path), "") and not out.exists()


def test_a_model_that_cuts_to_the_text_reads_alike_from_onnx_without_torch(
    trained_run, tmp_path, captcha_dir
):
    from dataclasses import replace

    from captcha_crnn.model.io import load_model, save_model

    bundle = load_model(trained_run / "model.pt")
    cut = tmp_path / "cut.pt"
    save_model(cut, bundle.model, bundle.charset, replace(bundle.policy, crop=True), bundle.meta)
    exported = tmp_path / "cut.onnx"
    assert main(["export", str(cut), str(exported)]) == 0
    paths = sorted(str(p) for p in captcha_dir.glob("*.png"))
    code = (
        "import json; from captcha_crnn import Recognizer; "
        f"rec = Recognizer.load({str(exported)!r}); assert rec.policy.crop; "
        f"print(json.dumps([p.text for p in rec.predict({paths!r})]))"
    )
    assert json.loads(run_without(code)) == [p.text for p in Recognizer.load(cut).predict(paths)]
