"""The viper module's requantization (templates/micropython/_requant.py.j2, machine-word integers in 16-bit limbs:
a row with zero point and clamp, and one value) is a twin of sepgen.fixedpoint's multiply_by_quantized_multiplier
(+ zero point + clamp), its rounded_divide (the pooling's average) a twin of fixedpoint.rounded_divide: run inside
MicroPython on a 64-bit word (the unix port, x64) and on a 32-bit one
(MicroPython's Cortex-M7 firmware in QEMU, where viper ints wrap), on every shift with edge accumulators and
multipliers, rounding ties of both roundings, and random cases, every value equals the NumPy result."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import require_tool
from test_micropython_qemu import require_qemu_tools

from sepgen import __version__, codegen
from sepgen import fixedpoint as fp

INT32_MIN, INT32_MAX = fp.INT32_MIN, fp.INT32_MAX
SHIFTS = range(-31, 31)
MULTIPLIERS = (0, 1, 2, 3, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFF8000, 1 << 29, (1 << 30) - 1, 1 << 30,
               (1 << 30) + 1, 0x55555555, (1 << 31) - 2, (1 << 31) - 1)
#: (zero point, lo, hi, offset into dst) of the requant rows: the int8 range, fused activations, a narrow clamp
SETTINGS = ((0, -128, 127, 0), (-128, -128, 127, 3), (5, -10, 100, 1), (127, 0, 6, 2), (-3, -128, -120, 5))


def in_range(x: int, shift: int) -> bool:
    """The generator's guarantee: x * 2^max(shift, 0) fits int32."""
    return INT32_MIN <= x << max(shift, 0) <= INT32_MAX


def cases(rng: np.random.Generator, random: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, multiplier, shift) int64 arrays: edges for every shift, ties, then ``random`` random cases."""
    rows = []
    for s in SHIFTS:
        left, right = max(s, 0), max(-s, 0)
        lo, hi = INT32_MIN >> left, INT32_MAX >> left
        edges = {lo, lo + 1, lo + 2, hi, hi - 1, -1, 0, 1, 2, -2, 3, -3, 0x7FFF, -0x8000, 0xFFFF, -0x10000}
        rows += [(x, m, s) for m in MULTIPLIERS for x in edges]
        # ties of the high multiply: x odd times m = 2^(30 - left) is an odd multiple of 2^30
        rows += [(x, 1 << (30 - left), s) for x in (1, -1, 3, -3, 5, -5, hi if hi % 2 else hi - 1, lo + 1)]
        if right:  # ties of the rounding divide: m = 2^30 and x = 2t give h = t = j 2^r + 2^(r-1), and t +- 1
            for j in range(-3, 3):
                t = j * (1 << right) + (1 << (right - 1))
                rows += [(2 * (t + d), 1 << 30, s) for d in (-1, 0, 1)]
                rows += [(2 * (t + d) + 1, (1 << 30) + 1, s) for d in (-1, 0)]
    shift = rng.integers(-31, 31, random)
    mult = rng.integers(0, 1 << 31, random)
    x = rng.integers(INT32_MIN, INT32_MAX + 1, random)
    small = rng.integers(-(1 << 16), 1 << 16, random)
    x = np.where(np.arange(random) % 3 == 0, small, x) >> np.maximum(shift, 0)
    rows += zip(x.tolist(), mult.tolist(), shift.tolist())
    rows = [r for r in rows if in_range(r[0], r[2])]
    x, m, s = (np.array(column, dtype=np.int64) for column in zip(*rows))
    return x, m, s


def row_case(rng: np.random.Generator, channels: int = 41, pixels: int = 23):
    """One requant row: per-channel multipliers and shifts (edges and random), accumulators within range."""
    mult = np.concatenate([MULTIPLIERS, rng.integers(0, 1 << 31, channels - len(MULTIPLIERS))])
    shift = np.concatenate([[-31, 30, 0, -1, 1], rng.integers(-31, 31, channels - 5)])
    left = np.maximum(shift, 0)
    x = rng.integers(INT32_MIN, INT32_MAX + 1, (pixels, channels)) >> left
    x[0] = INT32_MIN >> left
    x[1] = INT32_MAX >> left
    assert all(in_range(int(v), int(sh)) for v, sh in zip(x.reshape(-1), np.tile(shift, pixels)))
    x[2:6] = rng.integers(-(1 << 12), 1 << 12, (4, channels)) >> left
    return x.reshape(-1), mult, shift


def rdiv_cases() -> tuple[np.ndarray, np.ndarray]:
    """(acc, count) of the pooling division: every sum of up to 9 taps of int8 over counts 1..9 (ties of both signs
    included), global-pool sizes (125 taps of -128 / 127 and near ties), and large sums."""
    acc, count = [], []
    for c in range(1, 10):
        for a in range(-128 * c, 127 * c + 1):
            acc.append(a)
            count.append(c)
    for c in (125, 1000, 65536):
        for a in (-128 * c, 127 * c, c // 2, -(c // 2), c // 2 - 1, -(c // 2) + 1, c + c // 2, -c - c // 2, 0, 1, -1):
            acc.append(a)
            count.append(c)
    return np.array(acc, dtype=np.int64), np.array(count, dtype=np.int64)


def int32_bytes(a: np.ndarray) -> str:
    return repr(np.asarray(a, dtype="<i4").tobytes())


def check_script(x, m, s, row, row_mult, row_shift) -> str:
    rdiv_acc, rdiv_count = rdiv_cases()
    return codegen.environment().get_template("micropython/requant_check.py.j2").render(
        rdiv_acc=int32_bytes(rdiv_acc), rdiv_count=int32_bytes(rdiv_count),
        version=__version__, acc=int32_bytes(x), mult=int32_bytes(m), shift=int32_bytes(s), row=int32_bytes(row),
        row_mult=int32_bytes(row_mult), row_shift=int32_bytes(row_shift), settings=repr(SETTINGS))


def compare(stdout: str, x, m, s, row, row_mult, row_shift) -> None:
    """The script's output against sepgen.fixedpoint, every value; the first difference named."""
    lines = stdout.splitlines()
    assert lines and lines[-1] == "done", stdout[-2000:]
    printed = np.array([line.split()[1:] for line in lines if line.startswith("mbqm ")], dtype=np.int64)
    want = fp.multiply_by_quantized_multiplier(x, m, s)
    assert printed.shape == (len(want), 2)
    for got, what in ((printed[:, 0], "mbqm (a row)"), (printed[:, 1], "mbqm1 (one value)")):
        bad = np.flatnonzero(got != want)
        assert len(bad) == 0, (f"{what}: {len(bad)} of {len(want)} differ; first: x={x[bad[0]]} m={m[bad[0]]} "
                               f"s={s[bad[0]]}: viper {got[bad[0]]}, fixedpoint {want[bad[0]]}")
    rows = [line.split()[1:] for line in lines if line.startswith("requant ")]
    assert len(rows) == len(SETTINGS)
    channels = len(row_mult)
    value = fp.multiply_by_quantized_multiplier(row, np.tile(row_mult, len(row) // channels),
                                                np.tile(row_shift, len(row) // channels))
    for (zp, lo, hi, off), printed in zip(SETTINGS, rows):
        expect = [0] * off + (fp.clamp(value + zp, lo, hi) & 255).tolist()
        assert [int(v) for v in printed] == expect, (zp, lo, hi, off)
    rdiv = [line.split()[1:] for line in lines if line.startswith("rdiv ")]
    acc, count = rdiv_cases()
    got, want = np.array([v for chunk in rdiv for v in chunk], dtype=np.int64), fp.rounded_divide(acc, count)
    assert len(got) == len(acc)
    bad = np.flatnonzero(got != want)
    assert len(bad) == 0, (f"rounded_divide: {len(bad)} of {len(want)} differ; first: {acc[bad[0]]} / "
                           f"{count[bad[0]]}: viper {got[bad[0]]}, fixedpoint {want[bad[0]]}")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    return (*cases(rng, 4000), *row_case(rng))


def test_cases_cover_every_shift_and_both_ties(data):
    """The edge cases are what they claim (a test of the test): every shift, INT32_MIN/MAX accumulators, and
    exact ties of the high multiply and of the rounding divide."""
    x, m, s = data[:3]
    assert set(s.tolist()) == set(SHIFTS) and len(x) > 8000
    assert INT32_MIN in x.tolist() and INT32_MAX in x.tolist() and {0, (1 << 31) - 1} <= set(m.tolist())
    a = x << np.maximum(s, 0)
    assert np.any((a * m) % (1 << 31) == 1 << 30)
    h = fp.saturating_rounding_doubling_high_mul(a, m)
    r = np.maximum(-s, 0)
    assert {int(v) for v in r[(r > 0) & (h % (1 << r) == (1 << r) >> 1)]} == set(range(1, 32))


def test_viper_requant_on_unix_x64_equals_fixedpoint(data):
    micropython = require_tool("micropython")
    with tempfile.TemporaryDirectory(prefix="sepgen-requant-") as tmp:
        (Path(tmp) / "requant_check.py").write_text(check_script(*data))
        proc = subprocess.run([micropython, "requant_check.py"], cwd=tmp, capture_output=True, text=True,
                              check=False, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    compare(proc.stdout, *data)


def test_viper_requant_on_cortex_m7_equals_fixedpoint(data):
    """32-bit machine words: sums and products wrap, shifts of wrapped values would not be exact."""
    require_qemu_tools()
    from sepgen.micropython import qemu
    from sepgen.micropython.build import mpy_cross

    b = qemu.board("micropython-cortex-m7")
    with tempfile.TemporaryDirectory(prefix="sepgen-requant-") as tmp:
        source = Path(tmp) / "sepgen_runner.py"
        source.write_text(check_script(*data))
        mpy = mpy_cross(source, b.arch, Path(tmp) / "sepgen_runner.mpy").read_bytes()
    out, err = qemu.run_romfs(b, {"sepgen_runner.mpy": mpy}, timeout=600)
    assert not err.strip(), err[-3000:]
    compare(out, *data)
