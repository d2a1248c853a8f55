"""Spark schemas of the catalog's tables (`features.catalog` declares them engine-free).

The catalog names column types as Spark SQL type strings; this module maps the few the
lake uses to PySpark types, explicitly, so that a new type is a decision (add it here)
rather than whatever a parser happens to accept.
"""

from __future__ import annotations

from functools import cache

from pyspark.sql import types as T

from features.catalog import TableSpec

_TYPES: dict[str, T.DataType] = {
    "string": T.StringType(),
    "bigint": T.LongType(),
    "int": T.IntegerType(),
    "double": T.DoubleType(),
    "boolean": T.BooleanType(),
    "timestamp": T.TimestampType(),
    "map<string,double>": T.MapType(T.StringType(), T.DoubleType()),
    "map<string,bigint>": T.MapType(T.StringType(), T.LongType()),
    "array<bigint>": T.ArrayType(T.LongType()),
    "array<double>": T.ArrayType(T.DoubleType()),
}
SQL_TYPES = tuple(_TYPES)


def spark_type(sql_type: str) -> T.DataType:
    """The PySpark type of a catalog type name; ValueError naming the supported ones."""
    try:
        return _TYPES[sql_type]
    except KeyError:
        raise ValueError(f"unsupported column type {sql_type!r}; the lake uses "
                         f"{', '.join(SQL_TYPES)} (add a type to jobs/schemas.py)") from None


@cache
def spark_schema(spec: TableSpec) -> T.StructType:
    """The Spark schema of `spec`: its columns in order, all nullable."""
    fields = []
    for name, sql_type in spec.fields:
        try:
            fields.append(T.StructField(name, spark_type(sql_type), nullable=True))
        except ValueError as error:
            raise ValueError(f"{spec.name}.{name}: {error}") from None
    return T.StructType(fields)


def table_spec(name: str, grain: str, schema: T.StructType,
               partitioned: bool = True) -> TableSpec:
    """A catalog spec for a table whose schema a DataFrame gives (benchmarks, tests)."""
    fields = tuple((f.name, f.dataType.simpleString()) for f in schema.fields)
    spec = TableSpec(name, grain, fields, partitioned)
    spark_schema(spec)  # every type must be one the lake supports
    return spec
