"""The two ways a configuration is wrong: the whole of it, and one value.

:class:`ConfigError` is what loading raises, with every problem on its own
line; :class:`Invalid` is what a check of one value raises, its messages not
yet placed at a key path (:mod:`edgeport.config.schema` adds the path).
"""

from __future__ import annotations


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` holds one line per problem.

    ``warnings`` holds the warning lines found on the way (unknown keys...),
    which often explain a problem (a misspelled required key).
    """

    def __init__(self, problems: list[str], warnings: list[str] | None = None) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
        self.warnings = warnings or []


class Invalid(ValueError):
    """A value the file or environment got wrong: one message per problem, no path."""

    def __init__(self, *messages: str) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages
