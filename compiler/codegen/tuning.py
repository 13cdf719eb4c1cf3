"""Sizes and thresholds generated code is written with."""

BATCH = 4096               # rows per written batch
SAMPLE_PER_BATCH = 16      # rows a range-sorted query's tasks sample per written batch
AGGR_CHECK_ROWS = 100_000  # rows a scan aggregates before judging the reduction (Hive's checkinterval)
MIN_REDUCTION = 0.5        # groups/rows above this: stop aggregating map-side (Hive's min.reduction)
AGGR_EARLY_ROWS = 10_000   # an earlier look, after this many rows ...
EARLY_MIN_REDUCTION = 0.95  # ... stops at once when nearly every row was a new group
PASS_THROUGH_FLUSH = 65536  # passed-through pairs collected before they go to the writer ...
PASS_THROUGH_PER_PARTITION = 256  # ... or this many per partition (fewer, bigger batches) ...
PASS_THROUGH_FLUSH_MAX = 1 << 20  # ... but never more (about 100 MB of pairs)
SHUFFLE_HANDOVER = 32768   # join records a task collects before handing them to the writer
