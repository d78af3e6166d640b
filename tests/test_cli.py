"""The command line (docs/cli.md): generate/verify/simulate/report and one-line user errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sepgen
from sepgen.cli import main
from sepgen.frontends.builder import GraphBuilder
from util import quantized, rand


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, "sepgen.Graph"]:
    rng = np.random.default_rng(0)
    b = GraphBuilder((7, 7, 2), name="tiny")
    y = b.depthwise_conv2d("dw", b.input, rand(rng, 3, 3, 2, 2), rand(rng, 4), 2, 1, "same", "relu")
    y = b.conv2d("pw", y, rand(rng, 1, 1, 4, 6), rand(rng, 6), activation="relu6")
    y = b.dense("fc", b.flatten("flat", y), rand(rng, 4 * 4 * 6, 3), rand(rng, 3), "softmax")
    q, _ = quantized(b.build(y), rng)
    out = tmp_path_factory.mktemp("gen") / "tiny"
    sepgen.generate(q, out, prefix="tiny", schedule="layer")  # every layer traced whole
    return out, q


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sepgen.cli", *args], capture_output=True, text=True, timeout=300)


def test_generated_directory_contents(generated):
    out, _ = generated
    assert sorted(p.name for p in out.iterdir()) == [
        "sepgen_fixedpoint.h", "tiny.c", "tiny.h", "tiny.sepgen.json", "tiny.sepgen.npz"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".tiny")]  # no temp dirs left


def test_verify_directory(generated):
    out, _ = generated
    proc = run_cli("verify", str(out), "--count", "30")
    assert proc.returncode == 0, proc.stderr
    assert "byte for byte, on 30 inputs x 4 layers" in proc.stdout


def test_verify_reports_first_mismatch(generated, tmp_path):
    out, _ = generated
    broken = tmp_path / "broken"
    broken.mkdir()
    for p in out.iterdir():
        (broken / p.name).write_bytes(p.read_bytes())
    c = (broken / "tiny.c").read_text()
    # corrupt the pointwise layer's requantized value (one more LSB before the clamp) in the C only: the
    # requantization of its host kernel (generate's default --target host)
    i = c.index("static inline int8_t tiny_layer1_conv2d_requantize(int32_t acc, int channel)")
    j = c.index("sepgen_clamp(out", i) + len("sepgen_clamp(out")
    (broken / "tiny.c").write_text(c[:j] + " + 1" + c[j:])
    proc = run_cli("verify", str(broken), "--count", "10")
    assert proc.returncode == 1
    assert "layer 'pw' (conv2d) differs at index" in proc.stderr and "expected" in proc.stderr


def test_simulate_directory(generated, tmp_path):
    out, q = generated
    x = np.random.default_rng(1).integers(-128, 128, size=(5, 7, 7, 2)).astype(np.int8)
    np.save(tmp_path / "x.npy", x)
    proc = run_cli("simulate", str(out), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy"))
    assert proc.returncode == 0, proc.stderr
    y = np.load(tmp_path / "y.npy", allow_pickle=False)
    assert y.dtype == np.int8 and np.array_equal(y, sepgen.run(q, x))
    np.save(tmp_path / "xf.npy", x.astype(np.float32))
    proc = run_cli("simulate", str(out), "--input", str(tmp_path / "xf.npy"), "--output", str(tmp_path / "y.npy"))
    assert proc.returncode == 2 and "int8 inputs expected" in proc.stderr


@pytest.mark.parametrize("args,message", [
    (["generate", "missing.keras", "-o", "OUT"], "missing.keras: no such file"),
    (["generate", "model.onnx", "-o", "OUT"], "unsupported model file type '.onnx'"),
    (["verify", "nowhere/"], "no such file"),
    (["report", "x.pt"], "unsupported model file type '.pt'"),
])
def test_user_errors_are_one_line_exit_2(tmp_path, capsys, args, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sepgen: error: ") and message in err, err
    assert not (tmp_path / "OUT").exists()


def test_corrupt_npz_is_a_user_error(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    assert main(["generate", str(bad), "-o", str(tmp_path / "OUT")]) == 2
    err = capsys.readouterr().err
    assert "bad.npz" in err and err.count("\n") == 1
    assert not (tmp_path / "OUT").exists()


@pytest.fixture(scope="module")
def streamed(tmp_path_factory) -> Path:
    rng = np.random.default_rng(5)
    b = GraphBuilder((11, 9, 2), name="chain")
    y = b.conv2d("stem", b.input, rand(rng, 3, 3, 2, 4), None, 2, 1, "same", "relu")
    y = b.depthwise_conv2d("dw", y, rand(rng, 3, 3, 4, 1), rand(rng, 4), 1, 1, "same", "relu")
    y = b.conv2d("pw", y, rand(rng, 1, 1, 4, 8), rand(rng, 8), activation="relu6")
    y = b.dense("fc", b.global_avg_pool2d("gap", y), rand(rng, 8, 3), rand(rng, 3), "softmax")
    q, _ = quantized(b.build(y), rng)
    out = tmp_path_factory.mktemp("gen") / "chain"
    sepgen.generate(q, out, prefix="chain", schedule="auto", reuse_input=True)
    return out


def test_streamed_directory_verifies_and_reports_its_plan(streamed):
    import json

    header = (streamed / "chain.h").read_text()
    assert '#define CHAIN_SCHEDULE "auto"' in header and "#define CHAIN_REUSES_INPUT 1" in header
    proc = run_cli("verify", str(streamed), "--count", "20", "--sanitize")
    assert proc.returncode == 0, proc.stderr
    # dw and gap (ends of streamed runs), fc, softmax; the stem and pw run inside the chains
    assert "on 20 inputs x 4 traced layers (+2 streamed inside chains" in proc.stdout
    proc = run_cli("report", str(streamed), "--json")
    assert proc.returncode == 0, proc.stderr
    memory = json.loads(proc.stdout)["memory"]
    arena = int(header.split("#define CHAIN_ARENA_SIZE ")[1].split()[0])
    assert memory["arena_bytes"] == arena < memory["layer_arena_bytes"]
    assert memory["schedule"] == "auto" and memory["reuse_input"] is True
    # with --reuse-input, auto cuts the chain: dw's whole output fits over the input rows already read
    assert memory["streamed_chains"] == [["stem", "dw"], ["pw", "gap"]]
    step = memory["steps"][memory["peak_step"]]
    assert step["arena_bytes"] == memory["peak_bytes"] - sum(-b["bytes"] % 4 for b in step["live"]
                                                              if b["where"] == "arena")
    live = [b for s in memory["steps"] for b in s["live"]]
    assert {b["kind"] for b in live} == {"ring", "sum", "tensor"} and {b["where"] for b in live} == {"arena", "input"}
    text = run_cli("report", str(streamed)).stdout
    assert "Memory plan (--schedule auto, --reuse-input)" in text and "stem..dw (streamed" in text
    assert f"arena {arena:,} bytes (CHAIN_ARENA_SIZE)" in text  # the macro of the DIR's prefix
    assert f"RAM: {arena:,} bytes (static arena, CHAIN_ARENA_SIZE)" in text and "<PREFIX>" not in text


def test_generate_schedule_option_is_checked(tmp_path, capsys):
    assert main(["generate", "m.npz", "-o", str(tmp_path / "o"), "--schedule", "rows"]) == 2
    assert "--schedule: invalid choice: 'rows'" in capsys.readouterr().err


def test_report_ram_is_the_arena_of_the_schedule(streamed):
    import json

    report = json.loads(run_cli("report", str(streamed), "--json").stdout)
    header = (streamed / "chain.h").read_text()
    assert f"#define CHAIN_ARENA_SIZE {report['totals']['ram_bytes']}\n" in header
    assert report["totals"]["ram_bytes"] == report["memory"]["arena_bytes"] < report["memory"]["layer_arena_bytes"]
    assert report["prefix"] == "chain" and report["arena_macro"] == "CHAIN_ARENA_SIZE"


def test_every_option_has_help_text():
    from sepgen.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            assert action.help and action.help.strip(), f"{name} {action.option_strings or action.dest}"


@pytest.mark.parametrize("target,variant_macro,schedule", [
    ("host", None, "auto"), ("cortex-m3", None, "auto"), ("cortex-m4", "__ARM_FEATURE_DSP", "auto"),
    ("cortex-m55", "__ARM_FEATURE_MVE", "auto")])
def test_a_model_file_is_rendered_for_the_target(generated, tmp_path, monkeypatch, target, variant_macro, schedule):
    """verify/profile of a model file build the C 'generate --target' writes: the target's kernel variants, and
    the target's default schedule (auto everywhere: streamed convolutions run the variants' row kernels)."""
    from types import SimpleNamespace

    from sepgen import cli, codegen, targets

    _, q = generated
    model = tmp_path / "m.tflite"
    model.write_bytes(b"")  # never read: prepare() is replaced below
    monkeypatch.setattr(cli.api, "prepare", lambda *a, **k: SimpleNamespace(graph=q, agreement=None))
    monkeypatch.setattr(cli, "_precheck_model", lambda args: None)
    assert targets.default_schedule(target) == schedule
    args = cli.build_parser().parse_args(["verify", str(model), "--target", target])
    _, _, files = cli._load(args)
    assert codegen.schedule_of(files, "model") == (schedule, False)
    c = files["model.c"]
    assert (variant_macro in c) if variant_macro else ("__ARM_FEATURE" not in c)


def test_failing_tool_exits_3_with_its_output(generated, tmp_path):
    """A compiler that fails is reported with its own output and one closing line, not a traceback."""
    out, _ = generated
    fake_cc = tmp_path / "broken-cc"
    fake_cc.write_text("#!/bin/sh\necho 'broken-cc: licence expired' >&2\nexit 1\n")
    fake_cc.chmod(0o755)
    env = {**os.environ, "CC": str(fake_cc)}
    proc = subprocess.run([sys.executable, "-m", "sepgen.cli", "verify", str(out), "--count", "2"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 3, proc.stderr
    assert "broken-cc: licence expired" in proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("sepgen: error: broken-cc failed") and "the tool's output is above" in last


def test_api_generate_defaults_to_the_command_lines_schedule(generated, tmp_path):
    """sepgen.generate() without a schedule streams like `sepgen generate` (auto), on every target."""
    _, q = generated
    for target in ("host", "cortex-m4"):
        out = sepgen.generate(q, tmp_path / target, prefix="tiny", target=target)
        assert '#define TINY_SCHEDULE "auto"' in (out / "tiny.h").read_text()
