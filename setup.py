"""seaport: a privacy-aware analytics ingestion pipeline.

Installs the `seaport` console script. Also usable as Beam's `--setup_file`, so that
remote workers get the same packages as the launcher.
"""

from setuptools import find_packages, setup

setup(
    name="seaport",
    version="0.1.0",
    description="Privacy-aware analytics ingestion: Kafka -> Apache Beam -> DuckDB/Parquet",
    python_requires=">=3.11",
    packages=find_packages(include=["seaport*", "schemas*", "transforms*", "sinks*", "pipelines*", "dashboards*"]),
    package_data={
        "schemas": ["*.toml"],
        "seaport.devtools": ["pom.xml", "flink-job-server.pom.xml", "spark-job-server.pom.xml"],
        "seaport.collector": ["static/*"],
        "dashboards": ["vendor/*", "static/*", "sql/*.sql"],
    },
    install_requires=[
        "apache-beam==2.77.0",
        "confluent-kafka==2.16.1",
        "kafka-python==3.0.12",
        "pyarrow==25.0.1",
        "duckdb==2.0.1",
        "pydantic==2.14.4",
        "PyYAML==6.0.4",
        "aiohttp==3.14.5",
        "uvloop==0.23.0",
        "lz4==4.4.5",
        "holidays==0.108",
        "tqdm==4.70.1",
    ],
    entry_points={"console_scripts": ["seaport=seaport.cli:main"]},
)
