"""The shapes of the Placement answers this project reads.

Contract: ``check(value, shape)`` returns None when ``value`` has the
shape, else a short phrase naming where it differs (``at
allocations.<rp>: a list, not an object``). Pure. A shape is:

* a type (``str``, ``int``, ``float``; ``int`` never matches a bool,
  ``float`` takes an int too);
* ``{key: shape}``: an object holding each key with that shape (other
  keys are ignored: newer microversions add some); a key wrapped in
  ``Optional`` may be missing or null;
* ``{str: shape}``: an object whose every value has that shape;
* ``[shape]``: a list whose every item has that shape;
* ``Nullable(shape)``: null, or that shape.

Only what the code reads is checked: a field no caller reads may be
anything. The client checks the answer of a read against the shape its
caller names (``PlacementClient.get(path, shape=...)``), so no caller
meets a list where it indexes an object.
"""
import dataclasses


@dataclasses.dataclass(frozen=True)
class Optional:
    """A key that may be missing or null."""
    key: str


@dataclasses.dataclass(frozen=True)
class Nullable:
    shape: object


_NAMES = {str: 'a string', int: 'an integer', float: 'a number',
          dict: 'an object', list: 'a list', bool: 'a boolean',
          type(None): 'null'}


def _name(value):
    return _NAMES.get(type(value), type(value).__name__)


def _is(value, kind):
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def check(value, shape, where=''):
    """None if ``value`` has ``shape``, else where and how it differs."""
    at = ' at %s' % where if where else ''
    if isinstance(shape, Nullable):
        return None if value is None else check(value, shape.shape, where)
    if isinstance(shape, type):
        if _is(value, shape):
            return None
        return '%s, not %s%s' % (_name(value), _NAMES[shape], at)
    if isinstance(shape, list):
        if not isinstance(value, list):
            return '%s, not a list%s' % (_name(value), at)
        for i, item in enumerate(value):
            wrong = check(item, shape[0], '%s[%d]' % (where, i))
            if wrong:
                return wrong
        return None
    if not isinstance(value, dict):
        return '%s, not an object%s' % (_name(value), at)
    if list(shape) == [str]:
        for key, item in value.items():
            wrong = check(item, shape[str], _join(where, key))
            if wrong:
                return wrong
        return None
    for key, sub in shape.items():
        name = key.key if isinstance(key, Optional) else key
        if name not in value or value[name] is None and \
                isinstance(key, Optional):
            if isinstance(key, Optional):
                continue
            return 'no "%s"%s' % (name, at)
        wrong = check(value[name], sub, _join(where, name))
        if wrong:
            return wrong
    return None


def _join(where, key):
    return '%s.%s' % (where, key) if where else str(key)


RESOURCES = {'resources': {str: int}}

PROVIDERS = {'resource_providers': [{
    'uuid': str, 'name': str, 'generation': int,
    Optional('parent_provider_uuid'): str,
    Optional('root_provider_uuid'): str}]}
INVENTORIES = {'resource_provider_generation': int,
               'inventories': {str: {'total': int, 'reserved': int}}}
TRAITS = {'resource_provider_generation': int, 'traits': [str]}
USAGES = {'usages': {str: int}}
PROVIDER_USAGES = {'resource_provider_generation': int,
                   'usages': {str: int}}
# GET /allocations/{consumer}: a consumer Placement does not know has no
# generation, project or user.
CONSUMER_ALLOCATIONS = {'allocations': {str: RESOURCES},
                        Optional('consumer_generation'): int,
                        Optional('project_id'): str,
                        Optional('user_id'): str,
                        Optional('consumer_type'): str}
PROVIDER_ALLOCATIONS = {'allocations': {str: RESOURCES}}
CANDIDATES = {
    'allocation_requests': [{'allocations': {str: RESOURCES}}],
    'provider_summaries': {str: {
        'root_provider_uuid': str,
        Optional('traits'): [str],
        'resources': {str: {'capacity': int, 'used': int}}}}}
