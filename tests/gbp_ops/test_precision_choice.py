"""explain.precision auto: the host probe (CPU flags from a cpuinfo file, GPU compute
capabilities) and the decision, tested with both host answers and with failing fidelity."""

import pytest

from gbp_ops.precision_choice import HostPrecision, choose_precision, cpu_flags, probe_host

NATIVE = HostPrecision(True, "CPU flag avx512_bf16")
EMULATED = HostPrecision(False, "no avx512_bf16 or amx_bf16 CPU flag and no GPU of compute "
                                "capability >= 8.0")

CPUINFO = """processor\t: 0
vendor_id\t: {vendor}
flags\t\t: fpu vme sse sse2 avx avx2 {extra}
bugs\t\t: spectre_v1

processor\t: 1
flags\t\t: fpu vme sse sse2 avx avx2 {extra}
"""


def _cpuinfo(tmp_path, extra, vendor="AuthenticAMD"):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO.format(extra=extra, vendor=vendor))
    return str(path)


@pytest.mark.parametrize("extra, native, detail", [
    ("avx512f avx512_bf16 avx512_vnni", True, "CPU flag avx512_bf16"),
    ("amx_bf16 amx_tile amx_int8", True, "CPU flag amx_bf16"),
    ("avx512f avx512bw avx512_vnni", False, "no avx512_bf16 or amx_bf16 CPU flag"),
    ("", False, "no avx512_bf16 or amx_bf16 CPU flag"),
])
def test_probe_reads_the_cpu_flags(tmp_path, extra, native, detail):
    host = probe_host(_cpuinfo(tmp_path, extra), gpu_capabilities=[])
    assert host.native_bf16 is native
    assert host.detail.startswith(detail)


@pytest.mark.parametrize("capabilities, native", [
    ([(7, 5)], False), ([(8, 0)], True), ([(7, 0), (8, 6)], True), ([(9, 0)], True)])
def test_probe_counts_gpus_from_compute_capability_8(tmp_path, capabilities, native):
    host = probe_host(_cpuinfo(tmp_path, "avx2"), gpu_capabilities=capabilities)
    assert host.native_bf16 is native
    if native:
        assert host.detail == "GPU compute capability {}.{}".format(*max(capabilities))


def test_unreadable_cpuinfo_means_no_flags(tmp_path):
    assert cpu_flags(str(tmp_path / "missing")) == frozenset()
    assert not probe_host(str(tmp_path / "missing"), gpu_capabilities=[]).native_bf16


def test_a_host_without_native_bf16_gets_float32_whatever_the_fidelity():
    for fidelity in (None, 0.999):
        precision, reason = choose_precision(EMULATED, fidelity, min_fidelity=0.97)
        assert precision == "float32"
        assert reason == f"this host does not compute bfloat16 natively ({EMULATED.detail})"


def test_a_native_host_with_faithful_maps_gets_bf16():
    precision, reason = choose_precision(NATIVE, 0.989, min_fidelity=0.97)
    assert precision == "mixed_bfloat16"
    assert reason == ("this host computes bfloat16 natively (CPU flag avx512_bf16) and bfloat16 "
                      "maps have mean Spearman 0.989 to float32 maps on this run's sample, at "
                      "least explain.min_fidelity=0.97")
    assert choose_precision(NATIVE, 0.97, min_fidelity=0.97)[0] == "mixed_bfloat16"  # boundary


@pytest.mark.parametrize("fidelity", [0.89, 0.9699, float("nan")])
def test_failing_fidelity_falls_back_to_float32_with_the_reason(fidelity):
    precision, reason = choose_precision(NATIVE, fidelity, min_fidelity=0.97)
    assert precision == "float32"
    assert reason == ("this host computes bfloat16 natively (CPU flag avx512_bf16), but bfloat16 "
                      f"maps have mean Spearman {fidelity:.3f} to float32 maps on this run's "
                      "sample, below explain.min_fidelity=0.97")


def test_unmeasured_fidelity_and_savedmodels_stay_float32():
    precision, reason = choose_precision(NATIVE, None)
    assert precision == "float32" and "was not measured" in reason
    assert choose_precision(NATIVE, 0.999, keras_model=False) == (
        "float32", "a SavedModel is explained in float32 only")
