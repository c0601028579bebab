"""The process exit statuses of ``gbp-audit`` and ``gbp-audit compare``, in one place."""

EXIT_RUN_FAILED = 1  # the pipeline failed, or its counts do not reconcile
EXIT_USAGE = 2  # a mistake of the user's: bad config, input, model or output
EXIT_FAIL_ON = 3  # a compare.fail_on condition holds (every output written first)
