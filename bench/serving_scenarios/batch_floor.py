"""The batch-scoring floor for ``bench/batch_bench.py`` (run in the project's venv).

    python batch_floor.py --model model.pkl --input input.parquet --output floor.parquet

What a hand-written scorer does with pyarrow and the model alone: read the Parquet file in
record batches, stack the feature columns into a NumPy array, ``model.predict`` it, and
write the batch's columns plus ``prediction`` to a Parquet file (tmp file + rename). No
validation, no logging, no progress bar. The file is read with ``pre_buffer=False`` and a
1 MiB read buffer: with pyarrow's default (``pre_buffer=True``) ``iter_batches`` keeps what
it read cached until the file is closed, so peak memory grows with the file's size
(measured: 600 MB vs 220 MB peak RSS for a 414 MB file; ``--pre-buffer`` restores it). Imports happen before the clock starts; prints
one JSON line with the timed part and the row count.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--batch-rows", type=int, default=100_000)
    parser.add_argument("--pre-buffer", action="store_true", help="pyarrow's default reader")
    args = parser.parse_args()

    started = time.perf_counter()
    with open(args.model, "rb") as f:
        model = pickle.load(f)  # our own file, written by serving_bench.make_model
    source = (pq.ParquetFile(args.input) if args.pre_buffer
              else pq.ParquetFile(args.input, pre_buffer=False, buffer_size=1 << 20))
    names = source.schema_arrow.names
    schema = source.schema_arrow.append(pa.field("prediction", pa.int64()))
    tmp = args.output.with_name(args.output.name + ".tmp")
    rows = 0
    with pq.ParquetWriter(tmp, schema) as writer:
        for batch in source.iter_batches(batch_size=args.batch_rows):
            X = np.column_stack([batch.column(i).to_numpy() for i in range(len(names))])
            y = model.predict(X).astype(np.int64)
            columns = [*batch.columns, pa.array(y)]
            writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=schema))
            rows += batch.num_rows
    os.replace(tmp, args.output)
    print(json.dumps({"rows": rows, "op_s": time.perf_counter() - started,
                      "batch_rows": args.batch_rows, "pre_buffer": args.pre_buffer}))


if __name__ == "__main__":
    main()
