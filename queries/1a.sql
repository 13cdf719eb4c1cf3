-- AMPLab Big Data Benchmark query 1a: scan (pageRank > 1000)
SELECT pageURL, pageRank FROM rankings WHERE pageRank > 1000;
