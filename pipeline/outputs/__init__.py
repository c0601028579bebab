"""What a run leaves behind and how it is read back: the Parquet sinks and the publish step,
``manifest.json``, the pandas loaders, and the run summary printed at the end."""
