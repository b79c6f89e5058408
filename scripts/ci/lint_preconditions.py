#!/usr/bin/env python3
"""Fails if a `precondition`/`assert` condition in Sources/ calls something with a side effect.

Release builds are -Ounchecked (Package.swift), which drops `precondition`'s condition, call included: a
`precondition(pthread_rwlock_init(p, nil) == 0)` left the lock uninitialised and the service hung at
start-up (CI, 2026-12-04). Flagged: C calls (snake_case names such as pthread_key_create) and Swift's
mutating collection calls (insert, remove..., append, pop..., update..., removeValue).
"""
import pathlib
import re
import sys

CALL = re.compile(r"\b(precondition|assert)\s*\(")
SIDE_EFFECT = re.compile(
    r"\b[a-z]+_[a-z0-9_]+\s*\(|\.(insert|remove\w*|append|pop\w*|update\w*|removeValue|formUnion|subtract)\s*\(")


def condition(text: str, start: int) -> str:
    """The first argument of the call whose '(' is at start-1 (up to the top-level comma or ')')."""
    depth, i, quote = 0, start, False
    while i < len(text):
        c = text[i]
        if c == '"' and text[i - 1] != "\\":
            quote = not quote
        elif not quote:
            if c in "([{":
                depth += 1
            elif c in ")]}":
                if depth == 0:
                    break
                depth -= 1
            elif c == "," and depth == 0:
                break
        i += 1
    return text[start:i]


def main() -> int:
    root = pathlib.Path(__file__).resolve().parents[2]
    bad = []
    for path in sorted((root / "Sources").rglob("*.swift")):
        text = path.read_text()
        for m in CALL.finditer(text):
            cond = condition(text, m.end())
            if SIDE_EFFECT.search(cond):
                line = text.count("\n", 0, m.start()) + 1
                bad.append(f"{path.relative_to(root)}:{line}: {m.group(1)}({cond.strip()[:80]}"
                           " - the call is dropped in -Ounchecked release builds; bind its result first")
    for b in bad:
        print(b, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
