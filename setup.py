"""Packaging for gbp-audit: guided-backprop saliency audits as an Apache Beam pipeline.

Workers on Dataflow install this package through ``--setup_file ./setup.py``, so the pins
below are the set that co-installs (Beam 2.76+ is the first that admits TF 2.21).
"""

import setuptools

INSTALL_REQUIRES = [
    "tensorflow==2.21.*",
    "apache-beam==2.77.*",
    "tensorflow-datasets==4.9.*",
    "numpy>=2.0,<3",
    # 16: the first pyarrow built for numpy 2 (15's wheels pin numpy<2, apache/arrow#39537);
    # every table is readable by any pyarrow that reads BYTE_STREAM_SPLIT FLOAT (0.17+).
    "pyarrow>=16,<26",
    "pandas>=2.2,<4",
    "pyyaml>=6,<7",
    "matplotlib>=3.8,<4",
    "scikit-learn>=1.5,<2",  # findings: kNN graph, k-means, kNN assignment
    "google-crc32c>=1.5",  # C CRC checks for the TFRecord reader
    "importlib_resources",  # TFDS 4.9.10 imports it but does not declare it (datasets#11212)
]

EXTRAS_REQUIRE = {
    "gcp": ["apache-beam[gcp]==2.77.*"],
    "gpu": ["tensorflow[and-cuda]==2.21.*"],
    "test": ["apache-beam[gcp]==2.77.*", "pytest>=8", "scipy>=1.11", "ruff>=0.6",
             "duckdb>=2.0,<3", "polars>=2.1,<3"],  # the engine tests read every table
}

setuptools.setup(
    name="gbp-audit",
    version="0.1.0",
    description="Batch guided-backpropagation saliency audits of image classifiers on Apache Beam.",
    python_requires=">=3.10,<3.13",
    packages=setuptools.find_packages(include=["gbp_ops", "gbp_ops.*", "pipeline", "pipeline.*"]),
    install_requires=INSTALL_REQUIRES,
    entry_points={"console_scripts": ["gbp-audit=pipeline.cli:console_main"]},
    extras_require=EXTRAS_REQUIRE,
)
