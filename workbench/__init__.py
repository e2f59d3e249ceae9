"""What spans cohort and genomics: the release catalog, the synthetic release, the CLI."""

__version__ = "0.1.0"
