"""Checks of the built documentation site, run by ``docs/check_site.py`` after Sphinx."""
