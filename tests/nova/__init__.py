"""The Nova tier (tools/nova-tier/run-tests).

Nova's functional tests choose eventlet or native threads
(``nova.monkey_patch.patch``, by release and
``OS_NOVA_DISABLE_EVENTLET_PATCHING``) before anything else is imported
(nova/tests/functional/__init__.py); this package is imported first, so
it does the same, or eventlet would patch modules already in use (nova
33's live migration then loses its database transactions).
"""
import importlib.util

if importlib.util.find_spec('nova') is not None:
    # Nova 31 patches when the module is imported; 32 on, when asked.
    from nova import monkey_patch
    if hasattr(monkey_patch, 'patch'):
        monkey_patch.patch()
