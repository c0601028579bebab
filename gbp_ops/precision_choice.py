"""``explain.precision: auto``: which precision a run computes in, and why.

bfloat16 is real speed only where the hardware computes it (CPUs with AVX512_BF16 or AMX,
GPUs of compute capability 8.0 or more); elsewhere TensorFlow emulates it at about 0.3x
float32. And its maps must stay close to float32's on the model at hand. So ``auto`` picks
``mixed_bfloat16`` only when both hold, float32 otherwise, with a reason either way.

The host probe (``probe_host``) is kept apart from the decision (``choose_precision``) so the
decision can be tested with any host. No TensorFlow at import (config validation reads
``PRECISION_AUTO``); the GPU probe imports it when called.
"""

import dataclasses
import math

from gbp_ops.precision import PRECISION_BFLOAT16, PRECISION_FLOAT32

PRECISION_AUTO = "auto"
# /proc/cpuinfo flags of CPUs with bfloat16 arithmetic (AVX512_BF16 dot products, AMX tiles).
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
# NVIDIA GPUs compute bfloat16 natively from Ampere (compute capability 8.0) on.
MIN_BF16_GPU_CAPABILITY = (8, 0)
CPUINFO = "/proc/cpuinfo"


@dataclasses.dataclass(frozen=True)
class HostPrecision:
    """What the host can compute natively.

    Attributes:
        native_bf16: bool, bfloat16 arithmetic in hardware (CPU flag or GPU).
        detail: str, what the probe found, in words (for the manifest).
    """

    native_bf16: bool
    detail: str


def cpu_flags(path=CPUINFO):
    """The CPU's feature flags from the first ``flags`` line of ``path``; empty if unreadable.

    Returns:
        frozenset of str.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def gpu_compute_capabilities():
    """``(major, minor)`` of every GPU TensorFlow sees (those it reports one for)."""
    import tensorflow as tf

    found = []
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability:
            found.append(tuple(int(part) for part in capability))
    return found


def probe_host(cpuinfo=CPUINFO, gpu_capabilities=None):
    """This host's answer: bfloat16 in hardware or not.

    Args:
        cpuinfo: the cpuinfo file to read flags from.
        gpu_capabilities: None to ask TensorFlow (``gpu_compute_capabilities``), or a list of
            ``(major, minor)``.

    Returns:
        A ``HostPrecision``.
    """
    flags = sorted(set(BF16_CPU_FLAGS) & cpu_flags(cpuinfo))
    if flags:
        return HostPrecision(True, f"CPU flag {', '.join(flags)}")
    capabilities = gpu_compute_capabilities() if gpu_capabilities is None else gpu_capabilities
    native = [c for c in capabilities if tuple(c) >= MIN_BF16_GPU_CAPABILITY]
    if native:
        return HostPrecision(True, f"GPU compute capability {max(native)[0]}.{max(native)[1]}")
    minimum = ".".join(map(str, MIN_BF16_GPU_CAPABILITY))
    return HostPrecision(False, f"no {' or '.join(BF16_CPU_FLAGS)} CPU flag and no GPU of "
                                f"compute capability >= {minimum}")


def choose_precision(host, fidelity=None, min_fidelity=0.97, keras_model=True):
    """The precision ``auto`` computes in, and why.

    Args:
        host: a ``HostPrecision``.
        fidelity: None (not measured), or the mean per-image Spearman of bfloat16 maps to
            float32 maps on the run's sample (``pipeline.launch.fidelity``); measure it only on a
            native host.
        min_fidelity: ``explain.min_fidelity``.
        keras_model: False for a SavedModel, which is explained in float32 only.

    Returns:
        ``(precision, reason)``: ``PRECISION_BFLOAT16`` only for a Keras model on a native
        host whose measured fidelity reaches ``min_fidelity``, else ``PRECISION_FLOAT32``;
        reason is a sentence for the manifest and the report.
    """
    if not keras_model:
        return PRECISION_FLOAT32, "a SavedModel is explained in float32 only"
    if not host.native_bf16:
        return PRECISION_FLOAT32, f"this host does not compute bfloat16 natively ({host.detail})"
    if fidelity is None:
        return PRECISION_FLOAT32, (f"this host computes bfloat16 natively ({host.detail}), but "
                                   "the fidelity of bfloat16 maps was not measured")
    measured = (f"bfloat16 maps have mean Spearman {fidelity:.3f} to float32 maps on this "
                "run's sample")
    if math.isnan(fidelity) or fidelity < min_fidelity:
        return PRECISION_FLOAT32, (f"this host computes bfloat16 natively ({host.detail}), but "
                                   f"{measured}, below explain.min_fidelity={min_fidelity:g}")
    return PRECISION_BFLOAT16, (f"this host computes bfloat16 natively ({host.detail}) and "
                                f"{measured}, at least explain.min_fidelity={min_fidelity:g}")
