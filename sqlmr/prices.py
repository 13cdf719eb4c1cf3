"""AWS prices used for every cost figure sqlmr prints (one table, one place).

us-east-1, list prices as published by AWS; check before quoting figures.
"""

PRICES_DATE = "2026-11"
PRICES_SOURCE = "aws.amazon.com/lambda/pricing, /s3/pricing, /athena/pricing (us-east-1)"

LAMBDA_GB_SECOND = {"arm64": 0.0000133334, "x86_64": 0.0000166667}
LAMBDA_PER_REQUEST = 0.20 / 1_000_000
S3_PUT = 0.005 / 1000      # PUT, COPY, POST, LIST
S3_GET = 0.0004 / 1000     # GET and all other requests
ATHENA_PER_TB = 5.0        # per TB (2**40 bytes) scanned
ATHENA_MIN_BYTES = 10 * 2**20  # 10 MB minimum per query
