"""A view recording (``.rrd``) back as a table: what the viewer would show, for tests and
for anyone who wants the numbers (``rerun-sdk[catalog]``: a local catalog server and its
DataFusion reader)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embodied_tools.view.stream import TIMELINE


@dataclass
class Recording:
    """Rows on the ``stream`` timeline; ``log_time``: when the view logged each row."""

    table: Any  # pandas.DataFrame

    def column(self, path: str, component: str) -> Any:
        name = f"/{path.lstrip('/')}:{component}"
        if name not in self.table.columns:
            raise KeyError(f"{path} ({component}) is not in the recording; it has {self.paths()}")
        return self.table[name]

    def paths(self) -> list[str]:
        return sorted({c.split(":")[0].lstrip("/") for c in self.table.columns if ":" in c})

    def scalars(self, path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(stream time s, log time s since the epoch, value) of a scalar series."""
        col = self.column(path, "Scalars:scalars")
        rows = col.notna()
        t = self.table.loc[rows, TIMELINE].dt.total_seconds().to_numpy()
        logged = self.table.loc[rows, "log_time"].astype("int64").to_numpy() / 1e9
        values = np.array([float(np.asarray(v).ravel()[0]) for v in col[rows]])
        return t, logged, values

    def images(self, path: str) -> tuple[np.ndarray, list[np.ndarray]]:
        """(stream time s, "h w 3" uint8 images) of an image entity."""
        buf = self.column(path, "Image:buffer")
        fmt = self.column(path, "Image:format")
        rows = buf.notna()
        t = self.table.loc[rows, TIMELINE].dt.total_seconds().to_numpy()
        out = []
        for b, f in zip(buf[rows], fmt[rows], strict=True):
            spec = f[0]
            out.append(np.asarray(b[0], np.uint8).reshape(spec["height"], spec["width"], -1))
        return t, out

    def texts(self, path: str, component: str = "TextLog:text") -> list[str]:
        col = self.column(path, component)
        return [str(np.asarray(v).ravel()[0]) for v in col[col.notna()]]


def read_recording(path: str | Path) -> Recording:
    import rerun as rr

    with rr.server.Server(datasets={"view": [str(path)]}) as server:
        client = server.client()  # held: the reader's context lives in it
        table = client.get_dataset("view").reader(index=TIMELINE).to_pandas()
    return Recording(table)
