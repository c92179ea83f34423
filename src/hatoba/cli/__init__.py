"""The ``hatoba`` command line (typer + rich) over ``hatoba.client``."""
