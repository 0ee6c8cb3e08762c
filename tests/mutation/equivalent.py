"""Mutants judged equivalent: no test can tell them from the code, because no behaviour changes.

Keyed by ``Mutant.key`` (file, scope, operator, the text replaced and its
replacement, occurrence: no line numbers, so edits elsewhere keep a key
valid); the value says why. ``tests/mutation/test_config.py`` checks that
every key still names a mutant the mutator makes, and docs/MUTATION.md
lists them all (``make mutation`` writes that table).
"""
from __future__ import annotations

EQUIVALENT: dict[str, str] = {
}
