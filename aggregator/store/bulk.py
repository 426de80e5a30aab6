"""INSERTs of many rows: SQLAlchemy's statement and semantics, without its per-row cost on SQLite.

SQLAlchemy runs an executemany INSERT by processing every row's parameters in Python (cache
key, ``construct_params``, bind processors per value): for the rows of a cold tick that costs
more than SQLite's own work of storing them. On SQLite, ``BulkInsert`` compiles the
very same Core statement once, then hands the rows to the driver as tuples, each value through
its column's own bind processor (the ones SQLAlchemy would apply): one multi-row VALUES
statement per chunk when RETURNING is wanted (what SQLAlchemy's "insertmanyvalues" sends),
the driver's executemany otherwise. ``BulkExecute`` does the same for any other statement
whose parameters all come from the rows (an UPDATE per source, say). Other dialects
(PostgreSQL) run the Core statement as is.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from operator import itemgetter
from typing import Any

from sqlalchemy import Column, Connection, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

# Bound values per statement: SQLite's historical limit (SQLITE_MAX_VARIABLE_NUMBER before
# 3.32); a chunk of 999 // columns rows is still dozens of rows.
MAX_PARAMS = 999


@dataclass(frozen=True)
class _Compiled:
    """The statement as SQLite runs it: one row's SQL, and how a row becomes its values."""

    sql: str
    values_sql: str  # INSERT: "VALUES (?, ?, ...)", repeated for a multi-row statement
    pick: Callable[[Mapping[str, Any]], tuple[Any, ...]]  # a row's values, placeholder order
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]  # (position, bind processor)
    many: dict[int, str]  # rows -> the multi-row SQL

    def values(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        picked = self.pick(row)
        if not self.processors:
            return picked
        values = list(picked)
        for i, process in self.processors:
            values[i] = process(values[i])
        return tuple(values)


def _positional(stmt: Any, dialect: Dialect) -> tuple[str, tuple[str, ...], _Compiled]:
    """``stmt`` compiled for ``dialect``: its SQL, its parameter names in placeholder order,
    and how a row (parameter name -> value) becomes the values, through each parameter's
    bind processor."""
    compiled = stmt.compile(dialect=dialect)
    order = tuple(compiled.positiontup or ())
    processors = tuple(
        (i, process)
        for i, name in enumerate(order)
        if (process := compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
    )
    pick = itemgetter(*order) if len(order) > 1 else (lambda row: (row[order[0]],))
    return compiled.string, order, _Compiled(compiled.string, "", pick, processors, {})


class BulkExecute:
    """A Core statement run once per row (``run(conn, rows)``, rows: parameter name -> value).

    Every parameter must come from the rows (no literal values in the statement).
    """

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._compiled: weakref.WeakKeyDictionary[Dialect, _Compiled]
        self._compiled = weakref.WeakKeyDictionary()

    def run(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        if conn.dialect.name != "sqlite":
            conn.execute(self.statement, list(rows))
            return
        compiled = self._compiled.get(conn.dialect)
        if compiled is None:
            _, _, compiled = _positional(self.statement, conn.dialect)
            self._compiled[conn.dialect] = compiled
        conn.exec_driver_sql(compiled.sql, [compiled.values(row) for row in rows])


class BulkInsert:
    """``INSERT INTO table ... [ON CONFLICT (conflict) DO NOTHING] [RETURNING returning]``.

    ``run(conn, rows)`` inserts ``rows`` (mappings with the same keys: the columns to set) and
    returns the RETURNING rows as tuples (in no particular order, as the database returns
    them), or ``[]``.
    """

    def __init__(
        self,
        table: Table,
        *,
        conflict: Sequence[str] = (),
        returning: Sequence[Column[Any]] = (),
    ) -> None:
        self.table = table
        self.conflict = list(conflict)
        self.returning = tuple(returning)
        self._compiled: weakref.WeakKeyDictionary[Dialect, dict[tuple[str, ...], _Compiled]]
        self._compiled = weakref.WeakKeyDictionary()

    def statement(self, dialect_name: str, columns: Sequence[str] | None = None) -> Any:
        """The Core statement; with ``columns``, one row of placeholders for them."""
        stmt = (postgresql if dialect_name == "postgresql" else sqlite).insert(self.table)
        if self.conflict:
            stmt = stmt.on_conflict_do_nothing(index_elements=self.conflict)
        if self.returning:
            stmt = stmt.returning(*self.returning)
        if columns is not None:
            stmt = stmt.values({name: None for name in columns})
        return stmt

    def run(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        if not rows:
            return []
        columns = tuple(rows[0])
        if any(len(row) != len(columns) for row in rows):
            raise ValueError(f"rows for {self.table.name} differ in their columns")
        if conn.dialect.name != "sqlite":
            result = conn.execute(self.statement(conn.dialect.name), list(rows))
            return [tuple(row) for row in result] if self.returning else []
        compiled = self._compile(conn.dialect, columns)
        values = [compiled.values(row) for row in rows]
        if not self.returning:
            conn.exec_driver_sql(compiled.sql, values)
            return []
        out: list[tuple[Any, ...]] = []
        step = max(1, MAX_PARAMS // len(columns))
        for start in range(0, len(values), step):
            chunk = values[start : start + step]
            sql = compiled.many.get(len(chunk))
            if sql is None:
                group = ", ".join([compiled.values_sql.removeprefix("VALUES ")] * len(chunk))
                sql = compiled.many[len(chunk)] = compiled.sql.replace(
                    compiled.values_sql, f"VALUES {group}", 1
                )
            flat = tuple(value for row in chunk for value in row)
            out += [tuple(row) for row in conn.exec_driver_sql(sql, flat)]
        return out

    def _compile(self, dialect: Dialect, columns: tuple[str, ...]) -> _Compiled:
        by_columns = self._compiled.setdefault(dialect, {})
        known = by_columns.get(columns)
        if known is not None:
            return known
        sql, order, plain = _positional(self.statement(dialect.name, columns), dialect)
        if sorted(order) != sorted(columns):  # in the table's column order, and no others
            raise ValueError(f"unexpected parameters {order} for columns {columns}")
        for column in self.returning:
            if column.type.dialect_impl(dialect).result_processor(dialect, None) is not None:
                raise TypeError(f"RETURNING {column.name}: its values would need processing")
        values_sql = "VALUES (" + ", ".join(["?"] * len(columns)) + ")"
        if sql.count(values_sql) != 1:
            raise ValueError(f"cannot find {values_sql!r} in {sql!r}")
        known = replace(plain, values_sql=values_sql)
        by_columns[columns] = known
        return known
