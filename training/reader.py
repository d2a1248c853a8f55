"""The one reader of a training set: its manifest, its committed files, its rows as NumPy.

No Spark and no TensorFlow: the files of each table come from the Delta log (only committed
files) or a Parquet listing, and rows come out of pyarrow as NumPy columns. Strings become
object arrays (null -> ""), integers and booleans keep their dtype (null -> 0 / False), and
lists become fixed-width 2-D arrays (id lists padded with -1 to `id_list_width`, since 0 is
a valid id; float lists padded with 0 to their longest row).

Train rows come in piles (`jobs.training_set`: rows sent to a pile by a hash, written
unordered, one `shard=K` folder per pile, each at most about 100,000 rows). The reader does
the second stage of the Rao-Sandelius shuffle: per (seed, epoch) it reads the piles in a
random order and permutes each pile completely in memory, so every epoch is a uniform
random permutation of the set and any run of consecutive batches is a random sample.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from features.manifest import TrainingSetManifest, load_manifest, out_of_date

Columns = dict[str, np.ndarray]
SPLITS = ("train", "validation", "candidates")
# a Hive-style partition folder (`shard=3`): the files in one such folder are one pile
PILE_FOLDER = re.compile(r"^(.*/[^/=]+=[^/]*)/[^/]+$")


def table_files(table_path: Path | str, fmt: str = "delta") -> list[str]:
    """The data files of a table: from the Delta log, or a Parquet folder listing."""
    if fmt == "delta":
        from deltalake import DeltaTable

        return sorted(DeltaTable(str(table_path)).file_uris())
    return sorted(str(p) for p in Path(table_path).rglob("*.parquet"))


def to_numpy(column: pa.ChunkedArray | pa.Array, id_list_width: int) -> np.ndarray:
    """One Arrow column as a NumPy array (see the module doc for nulls and lists)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        lengths = column.value_lengths().fill_null(0).to_numpy()
        values = column.flatten().to_numpy(zero_copy_only=False)
        is_ids = pa.types.is_integer(column.type.value_type)
        width = id_list_width if is_ids else int(lengths.max(initial=0))
        dtype = values.dtype if values.size else (np.int64 if is_ids else np.float64)
        out = np.full((len(column), width), -1 if is_ids else 0, dtype=dtype)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        for j in range(width):  # widths are small: one vectorised pass per position
            has = lengths > j
            out[has, j] = values[starts[has] + j]
        return out
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column.fill_null("").to_numpy(zero_copy_only=False).astype(object)
    if pa.types.is_boolean(column.type):
        return column.fill_null(False).to_numpy(zero_copy_only=False)
    if pa.types.is_integer(column.type):  # keep the int dtype: a null count means 0
        return column.fill_null(0).to_numpy(zero_copy_only=False)
    return column.to_numpy(zero_copy_only=False)


def piles(files: Sequence[str]) -> list[list[str]]:
    """`files` grouped into piles, in order of first appearance: the files of one partition
    folder (a pile a writer split into several files) together, any other file alone."""
    grouped: dict[str, list[str]] = {}
    for path in files:
        folder = PILE_FOLDER.match(str(path))
        grouped.setdefault(folder.group(1) if folder else str(path), []).append(path)
    return list(grouped.values())


def _read_pile(pile: Sequence[str], columns: Sequence[str]) -> pa.Table:
    return pa.concat_tables([pq.read_table(path, columns=list(columns)) for path in pile])


def read_batches(files: Sequence[str], columns: Sequence[str], batch_size: int, seed: int,
                 epoch: int, id_list_width: int, drop_remainder: bool = True,
                 shuffle_files: bool = True, permute_piles: bool = True) -> Iterator[Columns]:
    """Fixed-size batches over the rows of `files`: the piles in a random order per
    (seed, epoch) (`shuffle_files`), each pile read whole and permuted (`permute_piles`);
    a batch may span two piles. Without both it reads in file order (inspection, tests)."""
    rng = np.random.default_rng([seed, epoch])
    order = piles(files)
    if shuffle_files:
        rng.shuffle(order)
    pending: list[pa.Table] = []
    held = 0
    for pile in order:
        table = _read_pile(pile, columns)
        if permute_piles:
            table = table.take(rng.permutation(table.num_rows))
        pending.append(table)
        held += table.num_rows
        if held < batch_size:
            continue
        table = pa.concat_tables(pending)
        start = 0
        while held - start >= batch_size:
            yield {c: to_numpy(table.column(c).slice(start, batch_size), id_list_width)
                   for c in columns}
            start += batch_size
        pending, held = [table.slice(start)], held - start
    if held and not drop_remainder:
        table = pa.concat_tables(pending)
        yield {c: to_numpy(table.column(c), id_list_width) for c in columns}


class TrainingSet:
    """A complete training set of the lake: manifest plus reads of its three tables.

    A set whose label or profile days were re-run after it was built is refused (its rows
    are no longer what the lake says); `check_inputs=False` reads it anyway (inspection)."""

    def __init__(self, lake_root: Path | str, run_id: str, check_inputs: bool = True) -> None:
        self.lake_root = Path(lake_root)
        self.manifest: TrainingSetManifest = load_manifest(lake_root, run_id)
        self.run_id = run_id
        stale = out_of_date(lake_root, self.manifest) if check_inputs else []
        if stale:
            more = f" and {len(stale) - 3} more" if len(stale) > 3 else ""
            raise ValueError(f"training set {run_id!r} is out of date: {', '.join(stale[:3])}"
                             f"{more} re-run or incomplete since it was built; rebuild it "
                             f"with python -m jobs.training_set")

    def path(self, split: str) -> Path:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
        return self.lake_root / getattr(self.manifest.tables, split)

    def files(self, split: str) -> list[str]:
        return table_files(self.path(split), self.manifest.format)

    def schema(self, split: str) -> pa.Schema:
        files = self.files(split)
        if not files:
            raise FileNotFoundError(f"training set {self.run_id!r} has no {split} files")
        return pq.read_schema(files[0])

    def rows(self, split: str) -> int:
        return sum(pq.ParquetFile(f).metadata.num_rows for f in self.files(split))

    def read(self, split: str, columns: Sequence[str], id_list_width: int = 64,
             limit: int | None = None) -> Columns:
        """Columns of a whole split in file order, or a random sample of `limit` rows: the
        first rows of the reader's order (piles are random subsets; each is permuted)."""
        files = self.files(split)
        if not files:
            return {c: np.array([]) for c in columns}
        if limit is None:
            table = _read_pile(files, columns)
        else:
            rng = np.random.default_rng(0)
            tables, held = [], 0
            order = piles(files)
            rng.shuffle(order)
            for pile in order:  # stop reading once `limit` rows are in
                table = _read_pile(pile, columns)
                tables.append(table.take(rng.permutation(table.num_rows)))
                held += table.num_rows
                if held >= limit:
                    break
            table = pa.concat_tables(tables).slice(0, limit)
        return {c: to_numpy(table.column(c), id_list_width) for c in columns}

    def batches(self, split: str, columns: Sequence[str], batch_size: int, seed: int = 0,
                epoch: int = 0, id_list_width: int = 64, drop_remainder: bool = True,
                shuffle_files: bool = True, permute_piles: bool = True) -> Iterator[Columns]:
        return read_batches(self.files(split), columns, batch_size, seed, epoch,
                            id_list_width, drop_remainder, shuffle_files, permute_piles)
