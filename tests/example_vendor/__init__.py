"""ACME: the example vendor of doc/source/contributor/adding-a-driver.rst.

Everything an ACME driver needs lives in this package and one entry point;
``tests/functional/test_example_vendor.py`` installs that entry point and
runs the project with it, touching nothing else."""
