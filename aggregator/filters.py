"""Include and exclude rules of sources and outputs (issue #15). Pure: no I/O, no clock.

A rule is a keyword or a regular expression (``re:`` prefix), optionally limited to some
fields (``title:``, ``content:``, ``author:``, ``categories:``, ``link:``, or several:
``title,categories:``). Without a field it looks in the title, the content (text, with the
summary), the categories and the author.

Keywords compare case-insensitively after NFKC (full-width letters, ligatures and
compatibility forms match their plain forms). They match whole words in scripts written with
spaces ("ad" does not match "read"; ``crypto*`` matches "cryptocurrency"), and anywhere in a
run of characters in scripts written without (CJK, Thai ...): "区块链" matches
"关于区块链的新闻". Expressions search the field's text as it is (``(?i)`` for case).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from .configcheck import Problems
from .process.html import cleaned_html_to_text
from .types import Action, Decision, Tombstone

FIELDS = ("title", "content", "author", "categories", "link")
DEFAULT_FIELDS = ("title", "content", "categories", "author")
_PREFIX = re.compile(
    r"^((?:title|content|author|categories|link)(?:,(?:title|content|author|categories|link))*):"
)


class Filterable(Protocol):
    """What rules look at: ``Entry`` (a source's rules) and ``StoredEntry`` (an output's)."""

    @property
    def title(self) -> str: ...
    @property
    def link(self) -> str | None: ...
    @property
    def author(self) -> str | None: ...
    @property
    def content_html(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def categories(self) -> tuple[str, ...]: ...


def fold(text: str) -> str:
    """The form keywords compare in: NFKC, case-folded (``"ＡＩ"`` and ``"ai"`` are equal),
    runs of white space as one space."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(folded.split())


# Scripts written without spaces between words: a keyword may start or end inside a run.
_UNSPACED = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u2e80-\u2fdf\u3040-\u30ff\u3100-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff\U00020000-\U0003ffff]"
)


def _joins(char: str) -> bool:
    """Whether ``char`` continues a word of a spaced script (a keyword may not end beside it)."""
    return char.isalnum() and not _UNSPACED.match(char)


def _has_word(text: str, word: str, *, open_start: bool, open_end: bool) -> bool:
    start = text.find(word)
    while start != -1:
        end = start + len(word)
        if (open_start or start == 0 or not _joins(text[start - 1])) and (
            open_end or end == len(text) or not _joins(text[end])
        ):
            return True
        start = text.find(word, start + 1)
    return False


@dataclass(frozen=True, slots=True)
class Rule:
    """One configured rule, ready to match: ``text`` is as written in the config."""

    text: str
    fields: tuple[str, ...]
    keyword: str = ""  # folded; "" for an expression
    pattern: re.Pattern[str] | None = None
    open_start: bool = False  # the keyword may start inside a word
    open_end: bool = False  # ... or end inside one

    def matches(self, values: Callable[[str, bool], Sequence[str]]) -> str | None:
        """The first field this rule matches, or None; ``values(field, folded)`` gives the
        field's texts, as they are or folded (keywords compare folded)."""
        pattern = self.pattern
        for name in self.fields:
            for value in values(name, pattern is None):
                if pattern is not None:
                    if pattern.search(value) is not None:
                        return name
                elif _has_word(value, self.keyword, open_start=self.open_start,
                               open_end=self.open_end):  # fmt: skip
                    return name
        return None


def parse_rule(text: str) -> Rule:
    """A rule from its config text; ``ValueError`` says what is wrong with it."""
    fields = DEFAULT_FIELDS
    body = text
    prefix = _PREFIX.match(text)
    if prefix:
        fields = tuple(dict.fromkeys(prefix.group(1).split(",")))
        body = text[prefix.end() :]
    if body.startswith("re:"):
        try:
            pattern = re.compile(body[3:])
        except re.error as exc:
            raise ValueError(f"invalid regular expression {body[3:]!r}: {exc}") from None
        if not body[3:]:
            raise ValueError("empty regular expression after 're:'")
        return Rule(text, fields, pattern=pattern)
    keyword = fold(body).strip()
    open_start, open_end = keyword.startswith("*"), keyword.endswith("*")
    keyword = keyword.strip("*").strip()
    if not keyword:
        raise ValueError(f"empty keyword in {text!r}")
    open_start = open_start or not _joins(keyword[0])
    return Rule(text, fields, keyword, None, open_start, open_end or not _joins(keyword[-1]))


@dataclass(frozen=True, slots=True)
class Filters:
    """A source's or an output's rules. No rules: everything passes."""

    include: tuple[Rule, ...] = ()
    exclude: tuple[Rule, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude)

    def drops(self, entry: Filterable) -> str | None:
        """Why ``entry`` does not pass (the rule, for the decision log), or None if it does."""
        if not self:
            return None
        values = _Values(entry)
        for rule in self.exclude:
            field = rule.matches(values)
            if field is not None:
                return f'exclude rule "{rule.text}" matched the {field}'
        if self.include and not any(rule.matches(values) is not None for rule in self.include):
            rules = ", ".join(f'"{rule.text}"' for rule in self.include)
            return f"no include rule matched ({rules})"
        return None

    def keep(self, entries: Sequence[Filterable]) -> list[Filterable]:
        return [e for e in entries if self.drops(e) is None]


class _Values:
    """An entry's texts by field, as they are or folded, each worked out once, when a rule
    first asks for it."""

    __slots__ = ("_cache", "_entry")

    def __init__(self, entry: Filterable) -> None:
        self._entry = entry
        self._cache: dict[tuple[str, bool], Sequence[str]] = {}

    def __call__(self, field: str, folded: bool) -> Sequence[str]:
        found = self._cache.get((field, folded))
        if found is None:
            found = self(field, False) if folded else self._read(field)
            if folded:
                found = tuple(fold(value) for value in found)
            self._cache[field, folded] = found
        return found

    def _read(self, field: str) -> Sequence[str]:
        entry = self._entry
        if field == "title":
            return (entry.title,)
        if field == "content":
            return (entry.summary, cleaned_html_to_text(entry.content_html))
        if field == "author":
            return (entry.author,) if entry.author else ()
        if field == "categories":
            return entry.categories
        return (entry.link,) if entry.link else ()


NO_FILTERS = Filters()


def build_filters(table: Mapping[str, Any], path: str, problems: Problems) -> Filters:
    """Rules from a checked table's ``include`` and ``exclude`` lists; what is wrong with one
    goes to ``problems`` (``sources[2].exclude[1]: invalid regular expression ...``)."""

    def rules(key: str) -> tuple[Rule, ...]:
        out: list[Rule] = []
        for i, text in enumerate(table.get(key, ())):
            try:
                out.append(parse_rule(text))
            except ValueError as exc:
                problems.add(f"{path}.{key}[{i}]", str(exc))
        return tuple(out)

    found = Filters(rules("include"), rules("exclude"))
    return found if found else NO_FILTERS


# Verdicts the rules judge: what a poll would add to the store. What is stored passed them when
# it came (its updates follow it); a dropped entry was never stored, so it comes back as new and
# is judged again: a rule removed from the config lets it in.
_JUDGED = frozenset((Action.NEW, Action.MERGE))


def screen(
    decisions: Sequence[Decision], filters: Filters, *, tombstones: Mapping[str, Tombstone]
) -> tuple[Decision, ...]:
    """A source's rules applied to one poll's verdicts: what they drop becomes ``FILTERED``
    with the rule as its reason, or ``UNCHANGED`` when the same rule dropped the same key
    before (its tombstone says so), so the decision log says it once."""
    if not filters:
        return tuple(decisions)
    out: list[Decision] = []
    for d in decisions:
        why = filters.drops(d.entry) if d.action in _JUDGED else None
        if why is None:
            out.append(d)
            continue
        before = tombstones.get(d.entry.key)
        if before is not None and not before.pruned and before.reason == why:
            out.append(_with(d, Action.UNCHANGED, f"still dropped: {why}"))
        else:
            out.append(_with(d, Action.FILTERED, why))
    return tuple(out)


def _with(d: Decision, action: Action, reason: str) -> Decision:
    return replace(d, action=action, reason=reason, rule="filter")
