"""cn.runtime_info(): the instruction set the runtime ISA dispatch picked, checked
against the CPU's flags (cpp/src/backend/simd.hpp)."""

import os
import platform

import pytest

import corenn as cn

ISAS = ("x86-64-v4", "x86-64-v3", "baseline")

# The x86-64 psABI micro-architecture levels, as /proc/cpuinfo names the flags
# (pni = SSE3, abm = LZCNT). A level includes the ones below it.
LEVEL_FLAGS = {
    "x86-64-v2": {"cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3"},
    "x86-64-v3": {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"},
    "x86-64-v4": {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"},
}


def cpu_flags():
    """The flags of the first processor in /proc/cpuinfo, or None where there is none."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


def expected_isa(flags):
    """The widest level whose flags (and those of every level below) the CPU has."""
    have = set()
    best = "baseline"
    for level in ("x86-64-v2", "x86-64-v3", "x86-64-v4"):
        have |= LEVEL_FLAGS[level]
        if not have <= flags:
            break
        if level != "x86-64-v2":
            best = level
    return best


def test_runtime_info_reports_the_settings_in_force():
    info = cn.runtime_info()
    assert set(info) == {"version", "isa", "isa_dispatch", "blas", "num_threads", "conv_algorithm", "fusion"}
    assert info["version"] == cn.__version__
    assert info["isa"] in ISAS
    assert isinstance(info["isa_dispatch"], bool)
    assert info["blas"] in ("scipy_openblas", "system", "none")
    assert info["num_threads"] == cn.get_num_threads()
    assert info["conv_algorithm"] == cn.get_conv_algorithm()
    assert info["fusion"] is cn.get_fusion()


def test_without_dispatch_the_isa_is_baseline():
    info = cn.runtime_info()
    if not info["isa_dispatch"]:
        assert info["isa"] == "baseline"
    else:
        # Only GCC builds for x86-64 Linux carry the clones.
        assert platform.machine() in ("x86_64", "AMD64") and os.name == "posix"


def test_the_dispatched_isa_matches_the_cpu_flags():
    info = cn.runtime_info()
    if not info["isa_dispatch"]:
        pytest.skip("this build has no ISA dispatch (not GCC >= 12 on x86-64 Linux with glibc)")
    flags = cpu_flags()
    if flags is None:
        pytest.skip("no /proc/cpuinfo to read the CPU's flags from")
    assert info["isa"] == expected_isa(flags)


def test_expected_isa_reads_the_levels_in_order():
    # The helper the test above relies on: a missing lower level caps the answer.
    v2, v3, v4 = LEVEL_FLAGS["x86-64-v2"], LEVEL_FLAGS["x86-64-v3"], LEVEL_FLAGS["x86-64-v4"]
    assert expected_isa(set()) == "baseline"
    assert expected_isa(v2) == "baseline"
    assert expected_isa(v2 | v3) == "x86-64-v3"
    assert expected_isa(v2 | v3 | v4) == "x86-64-v4"
    assert expected_isa(v2 | v4) == "baseline"
    assert expected_isa(v2 | (v3 - {"fma"}) | v4) == "baseline"
