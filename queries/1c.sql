-- AMPLab Big Data Benchmark query 1c: scan (pageRank > 10)
SELECT pageURL, pageRank FROM rankings WHERE pageRank > 10;
