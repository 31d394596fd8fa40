"""A family's `text_evidence`: its author's regular expressions, matched on every free-text answer
of a run, so one pattern must never be able to hang it.

A pattern is refused when the family is loaded if a repeated part of it holds another repeat
(`(\\w+\\s?)*`: the nested quantifiers whose backtracking grows exponentially with the answer), and
every match runs under a time budget (the `regex` engine's timeout; backreferences keep working), so
a slow pattern the check lets through stops with a one-line error that names it.
"""

from __future__ import annotations

import re
import re._parser as sre_parse  # the standard library's own parse of a pattern (re._parser, Python >= 3.11)

import regex

from harness.core.errors import ConfigError

MATCH_BUDGET_S = 2.0
"""The most one match may take: a family's patterns match a 40-token answer in microseconds, a
pattern that backtracks exponentially takes hours."""

_REPEATS = {sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, sre_parse.POSSESSIVE_REPEAT}


def nested_repeat(pattern: str, flags: int = 0) -> str | None:
    """What makes `pattern`'s matching time exponential, if anything: a repeated part of it that
    holds another repeat, one of the two unbounded (None: none does); the pattern must compile."""
    def walk(items, inside_repeat: str | None) -> str | None:
        for op, arg in items:
            if op in _REPEATS:
                low, high, body = arg
                # an unbounded repeat inside any repeat, or any repeat inside an unbounded one;
                # bounded in bounded ((x{2}){3}) is a fixed number of ways
                if inside_repeat and high > 1 and (inside_repeat == "unbounded" or high == sre_parse.MAXREPEAT):
                    return "a repeat inside a repeated group"
                kind = "unbounded" if high == sre_parse.MAXREPEAT else "bounded" if high > 1 else inside_repeat
                found = walk(body, "unbounded" if inside_repeat == "unbounded" else kind)
                if found:
                    return found
            elif op == sre_parse.SUBPATTERN:
                found = walk(arg[-1], inside_repeat)
                if found:
                    return found
            elif op == sre_parse.BRANCH:
                for branch in arg[1]:
                    found = walk(branch, inside_repeat)
                    if found:
                        return found
            elif op in (sre_parse.ASSERT, sre_parse.ASSERT_NOT):
                found = walk(arg[1], inside_repeat)
                if found:
                    return found
        return None

    return walk(sre_parse.parse(pattern, flags), None)


def check(pattern: str, where: str) -> None:
    """ConfigError (one line, naming `where` and the pattern) for a pattern that is no regular
    expression or whose worst case is exponential."""
    try:
        re.compile(pattern)
    except re.error as e:
        raise ConfigError(f"{where}: text_evidence {pattern!r} is not a regular expression ({e})") from e
    nested = nested_repeat(pattern)
    if nested:
        raise ConfigError(f"{where}: text_evidence {pattern!r} has {nested} (its matching time can grow "
                          "exponentially with an answer's length); write it without the inner repeat")


def search(pattern: str, text: str, ignore_case: bool, where: str) -> bool:
    """Whether `pattern` is found in `text` (`.` matches newlines), within MATCH_BUDGET_S;
    ConfigError naming `where` and the pattern when it runs out."""
    flags = regex.DOTALL | (regex.IGNORECASE if ignore_case else 0)
    try:
        return regex.search(pattern, text, flags, timeout=MATCH_BUDGET_S) is not None
    except TimeoutError as e:
        raise ConfigError(f"{where}: text_evidence {pattern!r} took over {MATCH_BUDGET_S:g} s on one answer of "
                          f"{len(text)} characters; write it so it cannot backtrack that long") from e
