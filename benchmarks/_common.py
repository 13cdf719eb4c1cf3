"""What the benchmark scripts share: AMPLab data at a scale, reused when
present, and a throwaway $SQLMR_HOME whose built-in tables read it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def amplab_data(root: str, scale: float, workers: int) -> Path:
    """``root/sf<scale>`` with rankings and uservisits, generated on first use."""
    from sqlmr.gen.amplab import generate
    data = Path(root) / f"sf{scale}"
    if not (data / "uservisits").is_dir():
        print(f"generating AMPLab data at scale {scale} into {data} …", flush=True)
        st = generate(str(data), scale, seed=1, workers=workers, progress=False)
        print(f"  {st['bytes'] / 1e6:.0f} MB in {st['seconds']:.1f} s ({st['mb_per_s']:.0f} MB/s)",
              flush=True)
    return data


def table_mb(data: Path, table: str) -> float:
    return sum(f.stat().st_size for f in (data / table).iterdir()) / 1e6


def isolated_home(data: Path, prefix: str = "sqlmr-bench-") -> str:
    """A fresh $SQLMR_HOME (set in this process) whose built-in tables are ``data``."""
    home = tempfile.mkdtemp(prefix=prefix)
    os.environ["SQLMR_HOME"] = home
    (Path(home) / "data").mkdir()
    os.symlink(data, Path(home) / "data" / "amplab")
    return home


UV_COLS = ("{'sourceIP': 'VARCHAR', 'destURL': 'VARCHAR', 'visitDate': 'DATE', "
           "'adRevenue': 'DOUBLE', 'userAgent': 'VARCHAR', 'countryCode': 'VARCHAR', "
           "'languageCode': 'VARCHAR', 'searchWord': 'VARCHAR', 'duration': 'INTEGER'}")
RK_COLS = "{'pageURL': 'VARCHAR', 'pageRank': 'INTEGER', 'avgDuration': 'INTEGER'}"


def duckdb_amplab(data: Path, threads: int):
    """A DuckDB connection with ``threads`` threads and views ``uservisits`` and
    ``rankings`` over the same files sqlmr reads."""
    import duckdb
    con = duckdb.connect()
    con.execute(f"SET threads TO {threads}")
    for table, cols in (("uservisits", UV_COLS), ("rankings", RK_COLS)):
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_csv('{data}/{table}/*', "
                    f"header=false, delim=',', quote='', escape='', columns={cols}, auto_detect=false)")
    return con
