"""generate --layout: each ecosystem's build files build the model (CMake host + Cortex-M, Arduino src/)
or carry the fields their documented formats require (library.properties, library.json, module.yml,
the ESP-IDF component CMakeLists)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

import sepgen
from sepgen import output
from sepgen.cli import build_parser, main
from sepgen.errors import OutputRefused
from sepgen.frontends.builder import GraphBuilder
from sepgen.layouts import LAYOUTS
from util import quantized, rand

ALL = tuple(name for name in LAYOUTS if name != "plain")


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(3)
    b = GraphBuilder((6, 6, 2), name="lay")
    y = b.depthwise_conv2d("dw", b.input, rand(rng, 3, 3, 2, 1), rand(rng, 2), 1, 1, "same", "relu")
    y = b.conv2d("pw", y, rand(rng, 1, 1, 2, 5), rand(rng, 5), activation="relu6")
    y = b.dense("fc", b.flatten("flat", y), rand(rng, 6 * 6 * 5, 3), rand(rng, 3))
    q, _ = quantized(b.build(y), rng)
    return q


@pytest.fixture(scope="module")
def full(model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("layouts") / "kws"
    sepgen.generate(model, out, prefix="kws", target="cortex-m4", layouts=("plain",) + ALL)
    return out


def _run(cmd, cwd=None):
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{cmd}:\n{done.stdout}\n{done.stderr}"
    return done


def test_every_layout_file_is_in_the_manifest(full):
    name, files = output.manifest_of(full)
    on_disk = {p.relative_to(full).as_posix() for p in full.rglob("*") if p.is_file()} - {name}
    assert on_disk == set(files)
    for expected in ("CMakeLists.txt", "cmake/arm-none-eabi.cmake", "library.properties", "src/kws.c", "src/kws.h",
                     "src/sepgen_fixedpoint.h", "library.json", "zephyr/module.yml", "zephyr/CMakeLists.txt",
                     "zephyr/Kconfig"):
        assert expected in files, expected
    assert (full / "src" / "kws.c").read_bytes() == (full / "kws.c").read_bytes()


def test_plain_is_the_default_and_adds_nothing(model, tmp_path):
    sepgen.generate(model, tmp_path / "p", prefix="kws")
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == [
        "kws.c", "kws.h", "kws.sepgen.json", "kws.sepgen.npz", "sepgen_fixedpoint.h"]


def test_regenerating_replaces_subfolders_but_never_a_user_file(model, tmp_path, capsys):
    out = tmp_path / "o"
    sepgen.generate(model, out, prefix="kws", layouts=("arduino", "zephyr"))
    sepgen.generate(model, out, prefix="kws", layouts=("arduino",))  # zephyr/ was sepgen's: removed
    assert not (out / "zephyr").exists() and (out / "src" / "kws.c").is_file()
    (out / "src" / "notes.txt").write_text("mine")
    with pytest.raises(OutputRefused, match="notes.txt"):
        sepgen.generate(model, out, prefix="kws", layouts=("arduino",), force=True)
    assert (out / "src" / "notes.txt").read_text() == "mine"
    (out / "src" / "notes.txt").unlink()
    (out / "src" / "kws.c").write_text("edited")
    with pytest.raises(OutputRefused, match="changed"):
        sepgen.generate(model, out, prefix="kws", layouts=("arduino",))
    sepgen.generate(model, out, prefix="kws", layouts=("arduino",), force=True)
    assert (out / "src" / "kws.c").read_bytes() == (out / "kws.c").read_bytes()


def test_cli_layout_option(capsys):
    args = build_parser().parse_args(["generate", "m.tflite", "-o", "d", "--layout", "cmake", "--layout", "zephyr"])
    assert args.layout == ["cmake", "zephyr"]
    assert build_parser().parse_args(["generate", "m.tflite", "-o", "d"]).layout == []
    assert main(["generate", "m.tflite", "-o", "d", "--layout", "bogus"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bogus" in err[0]


# ------------------------------------------------------------------- CMake
def _main_c(prefix: str, samples: np.ndarray) -> str:
    PREFIX = prefix.upper()
    rows = ",\n".join("{" + ", ".join(str(int(v)) for v in s.ravel()) + "}" for s in samples)
    return f"""#include <stdio.h>
#include "{prefix}.h"
static const int8_t inputs[{len(samples)}][{PREFIX}_INPUT_SIZE] = {{
{rows}
}};
int main(void) {{
    int8_t out[{PREFIX}_OUTPUT_SIZE];
    for (int n = 0; n < {len(samples)}; n++) {{
        if ({prefix}_invoke(inputs[n], out) != 0) return 1;
        for (int i = 0; i < {PREFIX}_OUTPUT_SIZE; i++) printf("%d ", out[i]);
        printf("\\n");
    }}
    return 0;
}}
"""


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not installed")
def test_cmake_layout_builds_on_the_host_and_matches_the_simulator(model, full, tmp_path):
    x = sepgen.api.random_inputs(model, 4, seed=5)
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.c").write_text(_main_c("kws", x))
    (app / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\nproject(app C)\n"
        f"add_subdirectory({full.as_posix()} kws)\nadd_executable(app main.c)\n"
        "target_link_libraries(app PRIVATE kws)\n")
    _run(["cmake", "-S", str(app), "-B", str(app / "build"), "-DCMAKE_BUILD_TYPE=Release"])
    _run(["cmake", "--build", str(app / "build"), "-j", "1"])
    got = _run([str(app / "build" / "app")]).stdout.split("\n")
    expected = sepgen.api.run_int8(model, x)
    assert [list(map(int, line.split())) for line in got if line] == [list(r.ravel()) for r in expected]


@pytest.mark.skipif(shutil.which("cmake") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="cmake or arm-none-eabi-gcc not installed")
def test_cmake_layout_cross_compiles_with_its_toolchain_file(full, tmp_path):
    build = tmp_path / "arm"
    _run(["cmake", "-S", str(full), "-B", str(build), f"-DCMAKE_TOOLCHAIN_FILE={full / 'cmake' / 'arm-none-eabi.cmake'}",
          "-DCMAKE_BUILD_TYPE=MinSizeRel"])
    _run(["cmake", "--build", str(build), "-j", "1"])
    lib = build / "libkws.a"
    assert lib.is_file()
    header = _run(["arm-none-eabi-readelf", "-h", "-A", str(lib)]).stdout
    # the flags of --target cortex-m4: ARMv7E-M, single-precision FPv4, float arguments in VFP registers
    assert "Tag_CPU_arch: v7E-M" in header and "Tag_FP_arch: VFPv4-D16" in header
    assert "Tag_ABI_VFP_args: VFP registers" in header
    symbols = _run(["arm-none-eabi-nm", str(lib)]).stdout
    assert re.search(r" T kws_invoke$", symbols, re.M)


# ----------------------------------------------------------------- Arduino
def test_arduino_library_properties_has_the_documented_fields(full):
    props = dict(line.split("=", 1) for line in (full / "library.properties").read_text().splitlines()
                 if line and not line.startswith("#"))
    for key in ("name", "version", "author", "maintainer", "sentence", "paragraph", "category", "url",
                "architectures"):
        assert props.get(key, "").strip(), key
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _.\-]{0,62}", props["name"]) and props["name"] == "kws"
    assert re.fullmatch(r"\d+\.\d+\.\d+", props["version"])
    assert props["category"] in ("Display", "Communication", "Signal Input/Output", "Sensors", "Device Control",
                                 "Timing", "Data Storage", "Data Processing", "Other")
    assert props["includes"] == "kws.h" and (full / "src" / "kws.h").is_file()
    assert re.match(r"https?://", props["url"])


def test_arduino_src_compiles_with_a_sketch_stub(full, tmp_path):
    cxx = shutil.which("g++") or shutil.which("clang++")
    cc = shutil.which("gcc") or shutil.which("clang")
    if not cxx or not cc:
        pytest.skip("no host C/C++ compiler")
    # An .ino is C++: the sketch includes the C header, as the Arduino IDE does, and links the C sources.
    sketch = tmp_path / "sketch.cpp"
    sketch.write_text('#include <kws.h>\nstatic int8_t in[KWS_INPUT_SIZE], out[KWS_OUTPUT_SIZE];\n'
                      'void setup(void) {}\nvoid loop(void) { kws_invoke(in, out); }\n'
                      'int main() { setup(); loop(); return out[0] == out[0] ? 0 : 1; }\n')
    objs = []
    for c in sorted((full / "src").glob("*.c")):
        obj = tmp_path / (c.stem + ".o")
        _run([cc, "-std=c99", "-Wall", "-Werror", "-c", str(c), "-o", str(obj)])
        objs.append(str(obj))
    _run([cxx, "-Wall", "-Werror", "-I", str(full / "src"), str(sketch), *objs, "-o", str(tmp_path / "sketch")])
    _run([str(tmp_path / "sketch")])


# -------------------------------------------------------------- PlatformIO
def test_platformio_library_json_has_the_documented_fields(full):
    doc = json.loads((full / "library.json").read_text())
    assert doc["name"] == "kws" and re.fullmatch(r"\d+\.\d+\.\d+", doc["version"])
    assert isinstance(doc["description"], str) and doc["description"]
    assert doc["frameworks"] == "*" and doc["platforms"] == "*"
    build = doc["build"]
    src, inc = full / build["srcDir"], full / build["includeDir"]
    assert (inc / "kws.h").is_file()
    # srcFilter: everything out, then the model's C sources in (not a MicroPython binding, not src/ copies)
    assert build["srcFilter"][0] == "-<*>"
    included = [re.fullmatch(r"\+<(.+)>", f).group(1) for f in build["srcFilter"][1:]]
    assert included == ["kws.c"] and all((src / f).is_file() for f in included)


# ------------------------------------------------------------------ Zephyr
def test_zephyr_module_has_the_documented_fields(full):
    doc = yaml.safe_load((full / "zephyr" / "module.yml").read_text())
    assert set(doc) <= {"name", "build", "depends", "samples", "tests", "boards", "package-managers"}
    assert re.fullmatch(r"[A-Za-z0-9_\-]+", doc["name"])
    assert set(doc["build"]) <= {"cmake", "kconfig", "cmake-ext", "kconfig-ext", "sysbuild-cmake",
                                 "sysbuild-kconfig", "settings"}
    cmake_dir = full / doc["build"]["cmake"]
    kconfig = full / doc["build"]["kconfig"]
    cmake = (cmake_dir / "CMakeLists.txt").read_text()
    symbol = re.search(r"^config (\w+)$", kconfig.read_text(), re.M).group(1)
    assert re.search(r"^\tbool \"", kconfig.read_text(), re.M)
    assert f"if(CONFIG_{symbol})" in cmake
    assert "zephyr_library_named(kws)" in cmake
    sources = re.search(r"zephyr_library_sources\(([^)]*)\)", cmake).group(1).split()
    assert sources and all((cmake_dir / s.replace("${CMAKE_CURRENT_LIST_DIR}/", "")).resolve().is_file()
                           for s in sources)


# ----------------------------------------------------------------- ESP-IDF
def _idf_register(text: str) -> dict[str, list[str]]:
    call = re.search(r"idf_component_register\(([^)]*)\)", text).group(1)
    args, key = {}, None
    for word in call.split():
        word = word.strip('"')
        if word.isupper():
            key = word
            args[key] = []
        else:
            args[key].append(word)
    return args


def test_espidf_component_registers_sources_and_includes(model, tmp_path, full):
    for out in (full, tmp_path / "idf"):  # with cmake (one file for both) and alone
        if out != full:
            sepgen.generate(model, out, prefix="kws", layouts=("espidf",))
        text = (out / "CMakeLists.txt").read_text()
        args = _idf_register(text)
        assert set(args) == {"SRCS", "INCLUDE_DIRS"}
        assert args["SRCS"] == ["kws.c"] and (out / "kws.c").is_file()
        assert all((out / d / "kws.h").is_file() for d in args["INCLUDE_DIRS"])
    assert "add_library" not in (tmp_path / "idf" / "CMakeLists.txt").read_text()
    assert "if(ESP_PLATFORM)" in (full / "CMakeLists.txt").read_text()
