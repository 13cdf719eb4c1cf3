-- AMPLab Big Data Benchmark query 2b: aggregation (SUBSTR(sourceIP, 1, 10))
SELECT SUBSTR(sourceIP, 1, 10), SUM(adRevenue) FROM uservisits GROUP BY SUBSTR(sourceIP, 1, 10);
