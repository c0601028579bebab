"""The one mapping from a RunConfig to an explainer, used by preflight, the audit's model
handler and the sanity stage, so all of them explain the same thing."""

import logging
import os
import threading

from pipeline import paths

_SHARED = {}  # (RunConfig, model file identity) -> explainer; holds the latest only
_SHARED_LOCK = threading.Lock()


def configure_gpus():
    """Turns on GPU memory growth: several SDK processes on one VM share each GPU."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised in this process; nothing to change
            pass


def configure_threads(intra_op_threads):
    """Caps TF's intra-op threads in this process, if TF has not started its thread pools."""
    if not intra_op_threads:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)
    except RuntimeError:  # TF already ran ops here; TF_NUM_INTRAOP_THREADS covers spawned workers
        logging.info("gbp-audit: TF already initialised; intra-op threads left as they are")


def load_configured_model(config):
    """The ``keras.Model`` (or ``SavedModelSource``, for a SavedModel directory) that
    ``config.model`` names, copied to local disk first if remote."""
    import gbp_ops

    configure_gpus()
    configure_threads(config.explain.worker_intra_op_threads)
    model = config.model
    return gbp_ops.load_model(paths.local_copy(model.path), safe_mode=model.safe_mode,
                              kind=model.kind, signature=model.signature,
                              input_key=model.input_key, output_key=model.output_key)


def explainer_for_model(config, model):
    """The configured explainer of ``model`` (the loaded model, or a randomized copy of it).

    Returns:
        An explainer with the ``gbp_ops.GuidedBackprop`` interface for ``explain.method``
        (``gbp_ops.make_explainer``, SmoothGrad included), compiled for
        ``config.explain.batch_size``, that reduces channels with ``config.explain.reduction``,
        computes in ``config.explain.precision`` and applies ``config.explain.nonlinearity_rule``
        at activations other than ReLU.
    """
    import gbp_ops

    explain = config.explain
    return gbp_ops.make_explainer(
        model,
        explain.method,
        gradcam_layer=explain.gradcam_layer,
        smoothgrad_samples=explain.smoothgrad_samples,
        smoothgrad_sigma=explain.smoothgrad_sigma,
        batch_size=explain.batch_size,
        strip_final_activation=config.model.strip_final_activation,
        allow_unguided=config.model.allow_unguided,
        layer_name=config.model.layer_name,
        reduction=explain.reduction,
        precision=explain.precision,
        nonlinearity_rule=explain.nonlinearity_rule,
    )


def build_explainer(config):
    """Loads the configured model and builds its explainer."""
    explainer = explainer_for_model(config, load_configured_model(config))
    logging.info("gbp-audit: built guided model (pid %d, %d guided ReLUs, %d gated activations)",
                 os.getpid(), len(explainer.guided_sites), len(explainer.gated_sites))
    return explainer


def shared_explainer(config):
    """``build_explainer(config)``, built once per process for the same config and model file:
    preflight and a local run's model handler (same process) share one explainer, and a
    replaced model file is loaded again. Thread-safe."""
    key = (config, paths.identity(config.model.path))
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED.clear()
            _SHARED[key] = build_explainer(config)
        return _SHARED[key]
