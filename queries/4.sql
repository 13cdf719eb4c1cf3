-- AMPLab Big Data Benchmark query 4: a Python UDF over the crawl (queries/url_count.py
-- counts each page's links), then the links' total counts; as the benchmark ran it, with
-- the output columns typed and `count` named cnt (COUNT is a function name)
DROP TABLE IF EXISTS url_counts_partial;
DROP TABLE IF EXISTS url_counts_total;
CREATE TABLE url_counts_partial AS
  SELECT TRANSFORM (line) USING 'python3 url_count.py'
         AS (sourcePage STRING, destPage STRING, cnt INT)
  FROM documents;
CREATE TABLE url_counts_total AS
  SELECT SUM(cnt) AS totalCount, destPage
  FROM url_counts_partial GROUP BY destPage;
