"""Demo and benchmark assets, built in code: a synthetic shapes dataset with a planted shortcut,
and the reference CNN. Never imported by ``pipeline`` or ``gbp_ops`` at run time; used by
``scripts/`` and ``tests/``."""
