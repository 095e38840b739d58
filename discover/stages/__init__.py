"""The work of each Snakemake rule as a plain function, one module per rules/*.smk file
(importable and testable without Snakemake; workflow_scripts/ only unpack ``snakemake``)."""
