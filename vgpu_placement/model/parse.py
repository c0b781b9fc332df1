"""Small text formats read in more than one place, parsed once here."""
import re

# Placement's integers are 32-bit signed: a larger count is not believed.
MAX_COUNT = 2 ** 31 - 1
# ASCII only: str.isdigit() also takes '²', which int() then refuses.
_COUNT_RE = re.compile(r'[0-9]+')
# Placement's rule for custom resource classes and traits.
_CUSTOM_NAME_RE = re.compile(r'CUSTOM_[A-Z0-9_]+', re.ASCII)
CUSTOM_NAME_MAX = 255
# The framebuffer a type's description states: NVIDIA's
# "framebuffer=1024M, ..." or mbochs' "64 MB video memory". ASCII digits
# only (int() also takes other scripts' digits).
_FRAMEBUFFER_RES = (re.compile(r'\bframebuffer=([0-9]{1,10})M\b'),
                    re.compile(r'\b([0-9]{1,10})\s*MB video memory'))


def count(text):
    """The count a text holds (surrounding white space aside), or None
    when it is not a plain decimal count Placement can hold."""
    text = (text or '').strip()
    if not _COUNT_RE.fullmatch(text) or len(text) > 10 or \
            int(text) > MAX_COUNT:
        return None
    return int(text)


def is_custom_name(name):
    """True for a name Placement accepts as a custom class or trait."""
    return isinstance(name, str) and len(name) <= CUSTOM_NAME_MAX and \
        bool(_CUSTOM_NAME_RE.fullmatch(name))


def framebuffer_mb(description):
    """The framebuffer size in MB a type's description states, or None."""
    for pattern in _FRAMEBUFFER_RES:
        found = pattern.search(description or '')
        if found:
            return int(found.group(1))
    return None
