"""Run TFLite / ONNX models on an emulated x86-64 CPU with AVX2 but no AVX-512 and no VNNI.

    probs, info = emulated({"a": Path("model.onnx")}, images)   # needs qemu-x86_64 (apt-get install qemu-user)

`qemu-x86_64 -cpu max` (TCG) offers AVX2 but not AVX-512 or VNNI, so onnxruntime and XNNPACK pick the
8-bit kernels such CPUs run: the ones whose 16-bit pair sums can saturate. The worker proves it is on
such a CPU before predicting: a uint8 x int8 MatMulInteger of 255s by 127s must come back saturated.
The worker imports only numpy and the runtimes (no TensorFlow), so the slow emulation stays short.
Used by tests/export and bench/export.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

EMULATOR = ("qemu-x86_64", "-cpu", "max")


def available() -> bool:
    return shutil.which(EMULATOR[0]) is not None


def emulated(models: dict[str, str | Path], images: np.ndarray, timeout: float = 3600) -> tuple[dict[str, np.ndarray], dict]:
    """({name: (N, K) probabilities}, worker info) from running each model file under EMULATOR."""
    with tempfile.TemporaryDirectory(prefix="kiln-avx2-") as tmp:
        folder = Path(tmp)
        np.save(folder / "images.npy", np.ascontiguousarray(images, dtype=np.uint8))
        (folder / "models.txt").write_text("".join(f"{k}\t{v}\n" for k, v in models.items()))
        proc = subprocess.run([*EMULATOR, sys.executable, __file__, str(folder)], timeout=timeout, capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "2"})
        if proc.returncode != 0:
            raise RuntimeError(f"the emulated worker failed ({proc.returncode}): {proc.stderr[-2000:]}")
        info = json.loads((folder / "info.json").read_text())
        if not info["u8s8_saturates"]:
            raise RuntimeError("the emulated CPU does not saturate uint8 x int8 pair sums: it is not an AVX2-only CPU")
        return {k: np.load(folder / f"{k}.npy") for k in models}, info


def u8s8_saturates() -> bool:
    """True where onnxruntime's uint8 x int8 kernel adds product pairs in saturating int16 (AVX2/AVX-512 without VNNI)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    k = 64
    weights = helper.make_tensor("B", TensorProto.INT8, (k, 16), np.full((k, 16), 127, np.int8).tobytes(), raw=True)
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "probe",
                              [helper.make_tensor_value_info("A", TensorProto.UINT8, [None, k])],
                              [helper.make_tensor_value_info("Y", TensorProto.INT32, [None, 16])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"A": np.full((32, k), 255, np.uint8)})[0][0, 0]
    return bool(got != 255 * 127 * k)  # saturated: 32 pairs of 32767 = 1,048,544 instead of 2,072,640


def _runtime(path: Path):
    if path.suffix == ".onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {session.get_inputs()[0].name: x})[0]
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=os.cpu_count() or 1)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]

    def predict(x):
        interp.resize_tensor_input(inp["index"], x.shape)
        interp.allocate_tensors()
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        return interp.get_tensor(out["index"]).copy()
    return predict


def _worker(folder: Path) -> None:
    """Inside the emulator: predict folder/images.npy with every model listed in folder/models.txt."""
    images = np.load(folder / "images.npy")
    info = {"u8s8_saturates": u8s8_saturates()}
    for line in (folder / "models.txt").read_text().splitlines():
        name, path = line.split("\t")
        predict = _runtime(Path(path))
        np.save(folder / f"{name}.npy", np.concatenate([predict(images[i:i + 64]) for i in range(0, len(images), 64)]))
    (folder / "info.json").write_text(json.dumps(info))


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
