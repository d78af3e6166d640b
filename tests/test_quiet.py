"""A quiet CLI: TensorFlow, Keras and the TFLite converter print nothing unless --verbose; the converted
.tflite of --quantizer tflite is kept in the output directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sepgen import output, quiet

ROOT = Path(__file__).resolve().parents[1]


def test_third_party_captures_python_and_file_descriptor_output(capfd):
    with quiet.third_party():
        print("from python")
        print("to stderr", file=sys.stderr)
        os.write(1, b"fd one\n")
        os.write(2, b"fd two\n")
        import warnings
        warnings.warn("a warning")
    print("after")
    out, err = capfd.readouterr()
    assert out == "after\n" and err == ""


def test_third_party_attaches_what_was_said_to_a_failure(capfd):
    with pytest.raises(RuntimeError) as info:
        with quiet.third_party():
            os.write(2, b"converter: the reason\n")
            raise RuntimeError("boom")
    assert any("converter: the reason" in note for note in info.value.__notes__)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_verbose_lets_it_through(capfd):
    quiet.set_verbose(True)
    try:
        with quiet.third_party():
            os.write(2, b"shown\n")
    finally:
        quiet.set_verbose(False)
    assert capfd.readouterr().err == "shown\n"


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "SEPGEN_VERBOSE"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "sepgen.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=env)


def test_generate_tflite_prints_only_sepgen_lines_and_keeps_the_tflite(tmp_path):
    keras = pytest.importorskip("keras")
    pytest.importorskip("tensorflow")
    L = keras.layers
    keras.utils.set_random_seed(5)
    inputs = keras.Input((9, 7, 2))
    x = L.DepthwiseConv2D(3, padding="same")(inputs)
    x = L.Conv2D(4, 1, activation="relu6")(x)
    x = L.GlobalAveragePooling2D()(x)
    keras.Model(inputs, L.Dense(3)(x), name="tinyq").save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", np.random.default_rng(1).normal(size=(20, 9, 7, 2)).astype(np.float32))
    args = ("generate", "m.keras", "--calibration", "x.npy", "--quantizer", "tflite", "--prefix", "kws")
    proc = _run(*args, "-o", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert proc.stderr == "", proc.stderr
    assert len(lines) == 2, proc.stdout
    assert lines[0].startswith("quantized m.keras: float vs int8 on 20 samples: top-1 agreement")
    assert lines[1].startswith("wrote ") and "kws.tflite" in lines[1]
    # the converted model is sepgen's output (in the manifest) and is the model the C was generated from
    _, files = output.manifest_of(tmp_path / "out")
    tflite = (tmp_path / "out" / "kws.tflite").read_bytes()
    assert files["kws.tflite"] == output.sha256(tflite) and tflite[4:8] == b"TFL3"
    from sepgen import api, serialize
    from sepgen.frontends import load

    graph = serialize.from_files(*serialize.find_graph_files(tmp_path / "out")[:2])
    x = api.random_inputs(graph, 8)
    assert np.array_equal(api.run_int8(graph, x), api.run_int8(load(tmp_path / "out" / "kws.tflite"), x))
    # --verbose lets TensorFlow's lines through
    loud = _run(*args, "-o", "loud", "--verbose", cwd=tmp_path)
    assert loud.returncode == 0, loud.stderr
    assert len((loud.stdout + loud.stderr).splitlines()) > 4


def _on_a_terminal(code: str) -> bytes:
    """Run ``code`` in a Python whose stdout and stderr are a pseudo-terminal; return what the terminal got."""
    import pty
    import select

    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("SEPGEN_VERBOSE", None)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=slave, stderr=slave, stdin=subprocess.DEVNULL,
                            env=env)
    os.close(slave)
    said = b""
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        said += chunk
    proc.wait(timeout=30)
    os.close(master)
    return said


def test_spinner_on_a_terminal_only_and_erased():
    """A labelled block that takes a while shows '<frame> <label> <s>s' on a terminal (TensorFlow's own output
    still captured), and erases the line when done; a quick block shows nothing."""
    said = _on_a_terminal("import os, time\nfrom sepgen import quiet\n"
                          "with quiet.third_party('loading model.keras'):\n"
                          "    os.write(2, b'tensorflow noise\\n')\n    time.sleep(1.0)\n"
                          "with quiet.third_party('quick'):\n    pass\n"
                          "print('done')\n")
    assert b"loading model.keras 0s" in said or b"loading model.keras 1s" in said, said
    assert b"\r\x1b[K" in said and said.rstrip().endswith(b"done"), said
    assert b"tensorflow noise" not in said and b"quick" not in said


def test_no_spinner_without_a_terminal(capfd):
    import time

    with quiet.third_party("loading"):
        time.sleep(quiet.SPINNER_DELAY + 0.3)
    with quiet.spinner("running"):
        time.sleep(quiet.SPINNER_DELAY + 0.3)
    assert capfd.readouterr() == ("", "")
