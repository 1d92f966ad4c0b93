"""plugboard_beam: plugboard-compatible process models compiled to Apache Beam."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

setup(
    name="plugboard-beam",
    version="0.1.0",
    description=(
        "Simulate and drive processes of interconnected stateful components: plugboard models "
        "on a laptop, on Apache Beam's DirectRunner and on Google Cloud Dataflow."
    ),
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.12",
    packages=find_packages(include=["plugboard_beam", "plugboard_beam.*"]),
    package_data={"plugboard_beam": ["py.typed"]},
    install_requires=[
        "apache-beam[gcp]>=2.60",
        "pydantic>=2.5,<3",
        "pyyaml>=6",
        "click>=8.1",
        "google-cloud-pubsub>=2.18",
        # streaming on Dataflow: the workers read the control secret (also in apache-beam[gcp])
        "google-cloud-secret-manager>=2.0",
        "pyarrow>=14",
        # SQLReader / SQLWriter: SQLAlchemy, and the PostgreSQL driver (binary wheels from PyPI)
        "SQLAlchemy>=2.0",
        "psycopg[binary]>=3.1",
        # process tune / Tuner: the Optuna sampler (ask/tell)
        "optuna>=3.4",
        # schemas.simple_cycles (plugboard's topology checks): Johnson's algorithm
        "networkx>=3.0",
        # plugboard.utils' DI container and Settings (plugboard_beam.utils), as plugboard has them
        "that-depends>=3.4.1",
        "pydantic-settings>=2.7.1",
    ],
    extras_require={
        # process tune --plot: the study as a PNG
        "plot": ["matplotlib>=3.5"],
        # setuptools: Beam builds a model folder's own setup.py with it (Dataflow --setup_file)
        "test": ["pytest>=8", "ruff>=0.5", "mypy>=1.10", "types-PyYAML", "setuptools",
                 # a Cloud Storage emulator on loopback for the gs:// tests
                 "gcp-storage-emulator",
                 # process tune --plot
                 "matplotlib>=3.5",
                 # tools/plugboard_parity.py: pytest plugins and the packages plugboard's own
                 # tests import
                 "pytest-asyncio>=1.0", "pytest-timeout>=2.3", "msgspec>=0.18", "uvloop>=0.19",
                 "aiofile>=3.8", "time-machine>=2.15"],
    },
    entry_points={"console_scripts": ["plugboard-beam=plugboard_beam.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3.12",
        "License :: OSI Approved :: Apache Software License",
    ],
)
