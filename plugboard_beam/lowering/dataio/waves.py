"""Waves: the keys one pipeline of a keyed run reads (``--rows-per-wave``)."""

from __future__ import annotations

from dataclasses import dataclass
import typing as _t

#: files a many-key file writer writes (rows spread by key hash)
SHARDS = 4


@dataclass(frozen=True)
class Wave:
    """The keys one pipeline of a keyed run reads: all of them (``keys`` None, one wave), or one of
    ``count`` consecutive groups of keys run one after the other (``plan_waves``). The last wave
    reads every key the earlier ones did not (``keys`` None, ``earlier`` theirs): a key that only
    appeared in the data after it was counted still runs."""

    index: int = 0
    count: int = 1
    keys: _t.Optional[frozenset[str]] = None
    #: rows of keyed data of these keys (0: not counted)
    rows: int = 0
    #: the keys of the earlier waves (the last wave reads every other key)
    earlier: frozenset[str] = frozenset()

    def has(self, value: _t.Any) -> bool:
        """Whether a row with this key column value is read in this wave. Rows without a key are
        read (and reported) in the first wave only."""
        if missing_key(value):
            return self.index == 0
        if self.keys is None:
            return str(value) not in self.earlier
        return str(value) in self.keys

    @property
    def filters(self) -> bool:
        """Whether this wave leaves some keys' rows out."""
        return self.keys is not None or bool(self.earlier)

    def shard(self, shard: int) -> tuple[int, int]:
        """(shard number, shards in all) of a sink writer's ``shard`` of this wave."""
        return self.index * SHARDS + shard, self.count * SHARDS


ALL_KEYS = Wave()


def missing_key(value: _t.Any) -> bool:
    """A key column value that is no key: null, NaN or empty text."""
    return value is None or (isinstance(value, float) and value != value) or str(value) == ""


def plan_waves(counts: _t.Mapping[str, int], rows_per_wave: int) -> list[Wave]:
    """Keys (in data order) with their row counts -> waves of consecutive keys of at most
    ``rows_per_wave`` rows each (a key with more rows than that is a wave of its own); one wave
    of all keys if they fit, or if ``rows_per_wave`` is 0."""
    groups: list[tuple[list[str], int]] = []
    keys: list[str] = []
    rows = 0
    for key, n in counts.items():
        if keys and rows_per_wave and rows + n > rows_per_wave:
            groups.append((keys, rows))
            keys, rows = [], 0
        keys.append(key)
        rows += n
    if keys:
        groups.append((keys, rows))
    if len(groups) <= 1:
        return [Wave(rows=sum(counts.values()))]
    waves = [Wave(i, len(groups), frozenset(ks), n) for i, (ks, n) in enumerate(groups[:-1])]
    earlier = frozenset(k for ks, _ in groups[:-1] for k in ks)
    return [*waves, Wave(len(groups) - 1, len(groups), None, groups[-1][1], earlier)]
