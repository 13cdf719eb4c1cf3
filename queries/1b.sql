-- AMPLab Big Data Benchmark query 1b: scan (pageRank > 100)
SELECT pageURL, pageRank FROM rankings WHERE pageRank > 100;
