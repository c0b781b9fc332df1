"""The Nova tier runs only where nova is importable.

``tools/nova-tier/run-tests`` runs it in Nova's virtualenv
(``.cache/nova-venv``). Anywhere else (the project's own ``python3 -m
pytest``) nothing here is collected: these modules import nova.
"""
import importlib.util

if importlib.util.find_spec('nova') is None:
    collect_ignore_glob = ['*.py']
